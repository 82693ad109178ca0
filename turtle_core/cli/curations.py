"""`python -m turtle_core curations FOLDER [--restore NAME]`: the curations a new discovery (or a restore)
replaced, kept in the folder's workspace, and how to bring one back."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands: argparse._SubParsersAction) -> None:
    curations = commands.add_parser(
        "curations", help="list the earlier curations of a folder (kept when replaced) or restore one"
    )
    curations.add_argument("folder", help="the image folder (read only)")
    curations.add_argument(
        "--restore",
        metavar="NAME",
        default=None,
        help="bring back this earlier curation (the current one is kept)",
    )


def run(args: argparse.Namespace) -> int:
    from turtle_core.names import display_name
    from turtle_core.operations.project import Project, ProjectError

    try:
        project = Project.open(args.folder)
        if args.restore:
            kept = project.restore_curation(args.restore)
            print(f"restored the curation {args.restore}", file=sys.stderr)
            if kept is not None:
                print(f"the curation it replaced is kept as {kept.name}", file=sys.stderr)
            return 0
        entries = project.earlier_curations()
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not entries:
        print(f"{display_name(args.folder)} has no earlier curations.", file=sys.stderr)
        return 0
    for entry in entries:
        names = ", ".join(display_name(name) for name in entry.names[:6])
        more = f" (+{len(entry.names) - 6} more)" if len(entry.names) > 6 else ""
        note = "" if entry.restorable else "  [cannot be restored: its discovery was damaged]"
        print(
            f"{entry.name}  {entry.saved}  {entry.reason}: {entry.n_images} images, {entry.n_edits} edit(s), "
            f"{entry.n_checked} checked; names: {names or '-'}{more}{note}"
        )
    return 0
