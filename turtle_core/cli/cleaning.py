"""`python -m turtle_core audit FOLDER --out AUDIT.csv`: near-duplicates and image-quality flags per image;
`python -m turtle_core names FOLDER --out NAMES.csv`: name suggestions for the last discovery's clusters."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def add_parsers(commands: argparse._SubParsersAction, add_embed_arguments: Callable[..., None]) -> None:
    """Register `audit` and `names` (`add_embed_arguments` adds the folder and backbone options)."""
    from turtle_core.cleaning.duplicates import DEFAULT_FRACTION
    from turtle_core.embedding.backbones import BACKBONES, PRESETS

    audit = commands.add_parser(
        "audit", help="find near-duplicates and dark, light, blurry, ... images (one row per usable image)"
    )
    add_embed_arguments(audit, list(BACKBONES), list(PRESETS))
    audit.add_argument("--out", "-o", required=True, help="CSV to write: path,duplicate_group,<flags>")
    audit.add_argument(
        "--fraction",
        type=float,
        default=None,
        help="near-duplicate threshold as a fraction of the median nearest-neighbour distance in the embeddings "
        f"(default {DEFAULT_FRACTION:g}; pairs must also stand out from each image's look-alikes in their "
        "pixel signatures)",
    )
    names = commands.add_parser("names", help="suggest names for the clusters of the last discovery")
    names.add_argument("folder", help="the folder of a previous `discover` (read only)")
    names.add_argument("--out", "-o", required=True, help="CSV to write: cluster,suggestions")


def run_audit(args: argparse.Namespace, backbones: tuple[list[str], dict[str, str]] | None) -> int:
    """Scan and embed FOLDER, then write one row per usable image: its near-duplicate group and flags."""
    from turtle_core.atomic import atomic_write_text
    from turtle_core.cleaning.duplicates import build_neighbour_graph, duplicate_groups
    from turtle_core.cleaning.quality import FLAG_TITLES, QUALITY_FLAGS, quality_flags
    from turtle_core.cli.common import TerminalProgress, csv_text, reported
    from turtle_core.embedding.backbones import BackboneUnavailable
    from turtle_core.names import display_name, escape_name
    from turtle_core.operations.cleaning import image_priority
    from turtle_core.operations.project import Project, ProjectError
    from turtle_core.state.curation_view import image_count

    if backbones is None:
        return 2
    progress = TerminalProgress(enabled=not args.quiet)
    with reported(progress, (ProjectError, BackboneUnavailable)):
        project = Project.open(args.folder)
        project.device = args.device
        project.ray_address = args.ray
        project.set_backbones(*backbones)
        scan = project.scan(progress)
        embedded, spaces, _, failed = project.embed(progress) if scan.images else ([], [], [], [])
        graph = build_neighbour_graph(
            spaces,
            [r.content_hash for r in embedded],
            signatures=[r.signature for r in embedded],
            progress=progress,
        )
    threshold = graph.default_threshold(args.fraction)
    fraction = threshold / graph.median_distance() if graph.median_distance() else 0.0
    groups = duplicate_groups(graph, threshold, image_priority(embedded))
    group_of = {embedded[row].path: number for number, g in enumerate(groups, start=1) for row in g.rows}
    flags = quality_flags(scan.images)
    rows = [
        [escape_name(record.path), group_of.get(record.path, ""), *flags.table[i].astype(int).tolist()]
        for i, record in enumerate(scan.images)
    ]
    out = Path(args.out)
    atomic_write_text(out, ",".join(["path", "duplicate_group", *QUALITY_FLAGS]) + "\n" + csv_text(rows))
    for item in scan.skipped + failed:
        print(f"skipped: {display_name(item.path)}: {display_name(item.reason)}", file=sys.stderr)
    counts = {flag: count for flag, count in flags.counts().items() if count}
    copies = sum(len(group.others) for group in groups)
    if not groups and not counts:
        print(
            f"{len(scan.images)} images: no near-duplicates and no quality flags; wrote {out}",
            file=sys.stderr,
        )
    else:
        found = (
            ", ".join(f"{count} {FLAG_TITLES[flag]}" for flag, count in counts.items()) or "no quality flags"
        )
        print(
            f"{image_count(len(scan.images))}: {len(groups)} group(s) of near-duplicates ({image_count(copies)} "
            f"beside the ones kept, threshold {threshold:.4f} = {fraction:g} × median nearest-neighbour distance); {found}; "
            f"wrote {out}",
            file=sys.stderr,
        )
    if not scan.images:
        print(f"error: no usable images in {display_name(args.folder)}", file=sys.stderr)
        return 1
    return 0


def run_names(args: argparse.Namespace) -> int:
    """Write `cluster,suggestions` for the clusters of the folder's last discovery (as curated)."""
    from turtle_core.atomic import atomic_write_text
    from turtle_core.cli.common import csv_text
    from turtle_core.names import display_name
    from turtle_core.operations.cleaning import cluster_suggestions
    from turtle_core.operations.project import Project, ProjectError

    try:
        project = Project.open(args.folder)
        snap = project.snapshot()
        if snap is None:
            raise ProjectError(
                f"{display_name(args.folder)} has no discovery yet: run `python -m turtle_core discover` first."
            )
        suggestions = cluster_suggestions(project, snap)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if suggestions is None:
        print(
            "error: none of this discovery's backbones can name images (names need a CLIP backbone with its "
            "weights, or EfficientNet-Lite with its shipped ImageNet head)",
            file=sys.stderr,
        )
        return 1
    rows = [[cluster, "; ".join(s.label() for s in found)] for cluster, found in suggestions.items()]
    out = Path(args.out)
    atomic_write_text(out, "cluster,suggestions\n" + csv_text(rows))
    named = sum(1 for found in suggestions.values() if found)
    print(
        f"{len(suggestions)} clusters, {named} with a suggestion (the others: no word with strong enough "
        f"evidence); wrote {display_name(out)}",
        file=sys.stderr,
    )
    return 0
