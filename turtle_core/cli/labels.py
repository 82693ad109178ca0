"""`python -m turtle_core import-labels FOLDER --labels LABELS`: labels made elsewhere become checked images
of the folder's curation (a `path,label` CSV with paths relative to FOLDER, a Label Studio JSON export, or an
ImageFolder tree of sorted copies). Unusable rows are listed with their row numbers and skipped."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    labels = commands.add_parser(
        "import-labels",
        help="import labels made elsewhere (CSV, Label Studio JSON, ImageFolder tree) as checked images",
    )
    labels.add_argument(
        "folder", help="the image folder (read only; a quick discovery runs first if it has none)"
    )
    labels.add_argument(
        "--labels",
        "-l",
        required=True,
        help="path,label CSV; Label Studio .json export; or a folder of class sub-folders",
    )
    labels.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def read_any(source: Path):
    """The rows of a labels CSV, a Label Studio JSON export or an ImageFolder tree, by what `source` is."""
    from turtle_core.ingest.labels import read_image_folder_tree, read_label_studio, read_labels_csv

    if source.is_dir():
        return read_image_folder_tree(source)
    data = source.read_bytes()
    if source.suffix.lower() == ".json":
        return read_label_studio(data, source.name)
    return read_labels_csv(data, source.name)


def run(args: argparse.Namespace) -> int:
    from turtle_core.cli.common import TerminalProgress
    from turtle_core.ingest.labels import LabelsFileError
    from turtle_core.names import display_name
    from turtle_core.operations.project import Project, ProjectError

    progress = TerminalProgress(enabled=not args.quiet)
    try:
        found = read_any(Path(args.labels))
        project = Project.open(args.folder)
        report = project.import_labels(found, origin="cli", progress=progress)
    except (OSError, LabelsFileError, ProjectError, ValueError) as error:
        progress.close()
        print(f"error: {error}", file=sys.stderr)
        return 1
    progress.close()
    for problem in report.problems:
        print(f"skipped: {display_name(problem.where)}: {display_name(problem.reason)}", file=sys.stderr)
    print(report.message(), file=sys.stderr)
    return 0 if report.n_imported else 1
