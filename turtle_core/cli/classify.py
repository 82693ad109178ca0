"""`python -m turtle_core classify OTHER --project FOLDER --out OUT.csv`: label every usable image of OTHER
with FOLDER's current categories (the same backbones; the embedding cache is shared). OTHER is only read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    classify = commands.add_parser("classify", help="label another folder with a curated folder's categories")
    classify.add_argument("other", help="the folder of images to label (read only)")
    classify.add_argument("--project", "-p", required=True, help="the curated folder whose categories to use")
    classify.add_argument("--out", "-o", required=True, help="CSV to write: path,label,confidence")
    classify.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    classify.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from turtle_core.atomic import atomic_write_text
    from turtle_core.cli.common import TerminalProgress, csv_text, reported
    from turtle_core.names import display_name, escape_name
    from turtle_core.operations.classifier import classify_folder
    from turtle_core.operations.project import Project, ProjectError

    progress = TerminalProgress(enabled=not args.quiet)
    with reported(progress, (ProjectError, ValueError)):
        project = Project.open(args.project)
        classifier = project.classifier()
        other = Path(args.other).expanduser().resolve()
        if not other.is_dir():
            raise ProjectError(f"{display_name(args.other)} is not a folder of images.")
        result = classify_folder(
            classifier, other, project.checkpoints, device=args.device, progress=progress
        )
    rows = [
        [escape_name(record.path), escape_name(label), f"{float(conf):.4f}"]
        for record, label, conf in zip(result.images, result.labels, result.confidence, strict=True)
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "path,label,confidence\n" + csv_text(rows))
    for item in result.skipped:
        print(f"skipped: {display_name(item.path)}: {display_name(item.reason)}", file=sys.stderr)
    print(
        f"{len(rows)} images labelled with {len(classifier.class_names)} categories of "
        f"{display_name(project.folder)}; wrote {display_name(out)}",
        file=sys.stderr,
    )
    return 0
