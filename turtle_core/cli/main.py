"""Command line: `python -m turtle_core discover FOLDER --clusters 10 --out labels.csv`;
`python -m turtle_core embed FOLDER [--ray ADDRESS]` only fills the embedding cache;
`audit FOLDER --out AUDIT.csv` finds near-duplicates and quality flags; `names FOLDER --out NAMES.csv`
suggests cluster names."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from turtle_core.cli import classify as cli_classify
from turtle_core.cli import cleaning as cli_cleaning
from turtle_core.cli import curations as cli_curations
from turtle_core.cli import labels as cli_labels
from turtle_core.cli import refine as cli_refine
from turtle_core.cli import update as cli_update
from turtle_core.cli.common import CommandExit, TerminalProgress, csv_text, reported
from turtle_core.progress import Cancelled

if TYPE_CHECKING:
    from turtle_core.operations.project import DiscoveryResult, Project

RAY_HELP = "embed on this Ray cluster (host:port, ray://host:port, auto) or `local` (a local Ray instance)"


def parse_clusters(text: str) -> int | tuple[int, int]:
    """'10' → 10; '5-30' → (5, 30)."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            return (low, high)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number like 10 or a range like 5-30, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    from turtle_core.constants import PARTITIONS
    from turtle_core.discovery.effort import DEFAULT_EFFORT, EFFORTS
    from turtle_core.embedding.backbones import BACKBONES, PRESETS

    parser = argparse.ArgumentParser(prog="python -m turtle_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    discover = commands.add_parser("discover", help="discover categories in a folder of images")
    _add_embed_arguments(discover, list(BACKBONES), list(PRESETS))
    discover.add_argument(
        "--clusters", "-k", type=parse_clusters, required=True, help="a number (10) or a range (5-30)"
    )
    discover.add_argument("--out", "-o", required=True, help="CSV to write: path,cluster,confidence")
    discover.add_argument(
        "--effort",
        choices=list(EFFORTS),
        default=DEFAULT_EFFORT,
        help="; ".join(f"{e.name}: {e.summary}" for e in EFFORTS.values()) + f" (default: {DEFAULT_EFFORT})",
    )
    discover.add_argument(
        "--partition",
        choices=list(PARTITIONS),
        default="auto",
        help="auto (default): keep TURTLE's or k-means' partition, whichever independent runs agree on more; "
        "turtle or kmeans: keep that one (turtle skips the comparison's extra runs)",
    )
    discover.add_argument(
        "--replace-curation",
        action="store_true",
        help="replace the folder's curation even when it holds edits made in the app: names and checked images "
        "carry over, and the whole curation is kept (see `curations`)",
    )

    embed = commands.add_parser("embed", help="scan a folder and embed its images into the cache")
    _add_embed_arguments(embed, list(BACKBONES), list(PRESETS))

    commands.add_parser("backbones", help="list backbones and whether their weights are available")

    demo = commands.add_parser("demo", help="write the bundled Animal-MNIST demo folder")
    demo.add_argument("--per-class", type=int, default=200)
    demo.add_argument("--dest", default=None)
    cli_refine.add_parser(commands)
    cli_curations.add_parser(commands)
    cli_update.add_parser(commands)
    cli_labels.add_parser(commands)
    cli_classify.add_parser(commands)
    cli_cleaning.add_parsers(commands, _add_embed_arguments)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run_command(args)
    except CommandExit as ended:
        return ended.code


def _run_command(args: argparse.Namespace) -> int:
    if args.command == "backbones":
        return _list_backbones()
    if args.command == "embed":
        return _embed(args)
    if args.command == "demo":
        from turtle_core.ingest.demo import default_demo_dir, write_demo_folder

        dest = Path(args.dest) if args.dest else default_demo_dir(args.per_class)
        print(write_demo_folder(dest, per_class=args.per_class))
        return 0
    if args.command == "refine":
        return cli_refine.run(args)
    if args.command == "curations":
        return cli_curations.run(args)
    if args.command == "update":
        return cli_update.run(args)
    if args.command == "import-labels":
        return cli_labels.run(args)
    if args.command == "classify":
        return cli_classify.run(args)
    if args.command == "audit":
        return cli_cleaning.run_audit(args, _backbone_choice(args))
    if args.command == "names":
        return cli_cleaning.run_names(args)
    return _discover(args)


def _list_backbones() -> int:
    from turtle_core.embedding.backbones import BACKBONES, PRESETS, check_availability

    for name, spec in BACKBONES.items():
        availability = check_availability(name)
        presets = ",".join(preset for preset, names in PRESETS.items() if name in names)
        print(f"{name:16} {availability.status:12} {presets:14} {spec.description}")
        if availability.status != "present":
            print(f"{'':16} {availability.detail}")
    return 0


def _backbone_choice(args: argparse.Namespace) -> tuple[list[str], dict[str, str]] | None:
    """The backbones and checkpoints `discover`/`embed` were asked for; None (usage error, said) when the
    flags are unusable or `--ray` names a cluster without Ray installed."""
    from turtle_core.embedding.backbones import PRESETS

    if not _ray_ready(args.ray):
        return None
    try:
        checkpoints = dict(_split_checkpoint(item) for item in args.checkpoint)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    names = args.backbones.split(",") if args.backbones else list(PRESETS[args.preset or "offline"])
    return [name.strip() for name in names if name.strip()], checkpoints


def _discover(args: argparse.Namespace) -> int:
    from turtle_core.discovery.describe import partition_note
    from turtle_core.operations.project import CurationHasEdits, Project, ProjectError

    choice = _backbone_choice(args)
    if choice is None:
        return 2
    names, checkpoints = choice
    progress = TerminalProgress(enabled=not args.quiet)
    project: Project | None = None
    try:
        project = Project.open(args.folder)
        project.device = args.device
        project.ray_address = args.ray
        project.set_backbones(names, checkpoints)
        result = project.run_discovery(
            args.clusters,
            progress=progress,
            effort=args.effort,
            replace_edits=args.replace_curation,
            partition=args.partition,
        )
    except CurationHasEdits as error:
        progress.close()
        print(
            f"error: {error}\nNothing was changed. Pass --replace-curation to start from a new discovery: "
            "names and checked images carry over, and the whole curation is kept (`curations` lists it).",
            file=sys.stderr,
        )
        return 3
    except ProjectError as error:
        progress.close()
        _report_skipped(_scan_skips(project), Path(args.out))
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (Cancelled, KeyboardInterrupt):
        progress.close()
        print("cancelled", file=sys.stderr)
        return 130
    progress.close()
    out = Path(args.out)
    _write_labels_csv(out, result)
    skipped = _scan_skips(project) + [(item.path, item.reason) for item in result.failed]
    _report_skipped(skipped, out)
    print(
        f"{len(result.images)} images → {result.n_clusters} categories "
        f"(generalisation score {result.score:.3f}) in {result.seconds:.1f} s; wrote {out}",
        file=sys.stderr,
    )
    print(partition_note(result.params), file=sys.stderr)
    if result.metrics:
        print("against folder labels: " + _format_metrics(result.metrics), file=sys.stderr)
    return 0


def _split_checkpoint(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--checkpoint expects NAME=PATH, got {item!r}")
    return name.strip(), path.strip()


def _scan_skips(project: Project | None) -> list[tuple[str, str]]:
    if project is None or project.scan_result is None:
        return []
    return [(item.path, item.reason) for item in project.scan_result.skipped]


def _write_labels_csv(out: Path, result: DiscoveryResult) -> None:
    """UTF-8 CSV; paths written with `names.escape_name` (undecodable bytes as \\xNN)."""
    from turtle_core.atomic import atomic_write_text
    from turtle_core.names import escape_name

    rows = [
        [escape_name(record.path), int(label), f"{float(confidence):.4f}"]
        for record, label, confidence in zip(result.images, result.labels, result.confidence, strict=True)
    ]
    atomic_write_text(out, "path,cluster,confidence\n" + csv_text(rows))


def _report_skipped(skipped: list[tuple[str, str]], out: Path) -> None:
    from turtle_core.atomic import atomic_write_text
    from turtle_core.names import display_name, escape_name

    report = out.with_name(out.stem + ".skipped.csv")
    if not skipped:
        if report.exists():
            os.unlink(report)
        return
    for path, reason in skipped:
        print(f"skipped: {display_name(path)}: {display_name(reason)}", file=sys.stderr)
    rows = [[escape_name(path), escape_name(reason)] for path, reason in skipped]
    atomic_write_text(report, "path,reason\n" + csv_text(rows))
    print(f"{len(skipped)} file(s) skipped; reasons in {report}", file=sys.stderr)


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in metrics.items())


# ------------------------------------------------------------------------------------ embed


def _add_embed_arguments(embed: argparse.ArgumentParser, backbones: list[str], presets: list[str]) -> None:
    """The folder and how to embed it: shared by `embed` and `discover`."""
    embed.add_argument("folder", help="folder of images (read only; never modified)")
    choice = embed.add_mutually_exclusive_group()
    choice.add_argument(
        "--preset", choices=sorted(presets), default=None, help="backbone preset (default: offline)"
    )
    choice.add_argument("--backbones", default=None, help=f"comma-separated, from: {', '.join(backbones)}")
    embed.add_argument(
        "--checkpoint", action="append", default=[], metavar="NAME=PATH", help="local weights for a backbone"
    )
    embed.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    embed.add_argument("--ray", metavar="ADDRESS", default=None, help=RAY_HELP)
    embed.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def _ray_ready(address: str | None) -> bool:
    """False (after saying how to install it) when --ray was given but Ray is not installed."""
    from turtle_core.embedding.ray_embed import INSTALL_HINT, ray_installed

    if address and not ray_installed():
        print(f"error: --ray {address}: {INSTALL_HINT}", file=sys.stderr)
        return False
    return True


def _embed(args: argparse.Namespace) -> int:
    """Scan FOLDER and embed every usable image with each backbone; report per backbone how many
    came from the cache and how many were computed, and every file that failed and why."""
    from turtle_core.embedding.backbones import BackboneUnavailable
    from turtle_core.embedding.ray_embed import RayUnavailable, embed_backbone_images
    from turtle_core.operations.project import Project, ProjectError

    choice = _backbone_choice(args)
    if choice is None:
        return 2
    names, checkpoints = choice
    progress = TerminalProgress(enabled=not args.quiet)
    project: Project | None = None
    lines: list[str] = []
    failed: dict[str, str] = {}
    with reported(
        progress,
        (ProjectError, BackboneUnavailable, RayUnavailable),
        "cancelled; every batch embedded so far is in the cache",
    ):
        project = Project.open(args.folder)
        project.set_backbones(names, checkpoints)
        images = project.scan(progress).images
        for name in project.backbones if images else []:
            result = embed_backbone_images(
                project.folder,
                images,
                name,
                project.checkpoints.get(name),
                device=args.device,
                ray_address=args.ray,
                progress=progress,
            )
            failed.update({item.path: item.reason for item in result.failed})
            where = " on Ray" if args.ray else ""
            lines.append(
                f"{name}: {int(result.ok.sum())} of {len(images)} images embedded ({result.from_cache} "
                f"from the cache, {result.computed} computed{where}, {len(result.failed)} failed); "
                f"cache {result.identity}"
            )
    for path, reason in _scan_skips(project) + sorted(failed.items()):
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    for line in lines:
        print(line)
    if not images:
        print(f"error: no usable images in {project.folder}", file=sys.stderr)
        return 1
    return 0
