"""`python -m turtle_core update FOLDER --out OUT.csv`: rescan a curated folder. Added (and changed) images are
embedded and labelled with the curation's categories, removed ones leave the curation; OUT gets
`path,label,confidence,new` for every usable image (`new` = 1 for the images this update labelled)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def add_parser(commands: argparse._SubParsersAction) -> None:
    update = commands.add_parser(
        "update", help="rescan a curated folder: label the images added since, drop the removed ones"
    )
    update.add_argument("folder", help="a folder with a curation (read only; never modified)")
    update.add_argument("--out", "-o", required=True, help="CSV to write: path,label,confidence,new")
    update.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from turtle_core.atomic import atomic_write_text
    from turtle_core.cli.common import TerminalProgress, csv_text, reported
    from turtle_core.names import display_name, escape_name
    from turtle_core.operations.project import Project, ProjectError

    progress = TerminalProgress(enabled=not args.quiet)
    with reported(progress, (ProjectError,), "cancelled; nothing was changed"):
        project = Project.open(args.folder)
        if project.discovery is None:
            raise ProjectError(
                f"{display_name(args.folder)} has no discovery yet: run `python -m turtle_core discover` first."
            )
        report = project.update(progress=progress)
    snap = project.snapshot()
    assert snap is not None
    labels = snap.curation.labels_as_names()
    added = snap.discovery.added_or_zeros()
    new = (
        (added == snap.discovery.revision) & (added > 0)
        if report.changed_anything
        else np.zeros(added.size, bool)
    )
    rows = [
        [
            escape_name(record.path),
            "" if label is None else escape_name(label),
            f"{float(conf):.4f}",
            int(flag),
        ]
        for record, label, conf, flag in zip(snap.images, labels, snap.confidence, new, strict=True)
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "path,label,confidence,new\n" + csv_text(rows))
    for item in report.failed:
        print(f"skipped: {display_name(item.path)}: {display_name(item.reason)}", file=sys.stderr)
    print(f"{report.message()} Wrote {display_name(out)}.", file=sys.stderr)
    return 0
