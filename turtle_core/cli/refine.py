"""`python -m turtle_core refine FOLDER --labels LABELS.csv --out OUT.csv`: propagate a curator's fixes.

LABELS has `path,label,checked` for the folder's images (paths relative to FOLDER, as our CSVs write them;
`checked` is 1 where a curator confirmed or fixed the label, 0 where it is only a starting point; the column's
former name `known` is accepted). Every usable image of the folder's last discovery gets a row in OUT
(`path,label,confidence`); checked rows keep their label. The rule is the app's "Propagate my fixes"
(`turtle_core.discovery.refine`): a checked row whose label differs from its cluster's name in the project is
a fix, one that agrees a confirmation, and an unchecked row changes label only where, on the checked rows,
the learner made clearly more of those fixes than it broke confirmations. The embeddings come from the
cache and the images from the last discovery: nothing is recomputed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f", ""})


class LabelsFileError(ValueError):
    """LABELS.csv cannot be used; the message says why."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    refine = commands.add_parser(
        "refine", help="re-label the images nobody checked, learning from the ones a curator checked"
    )
    refine.add_argument("folder", help="the folder of a previous `discover` (read only)")
    refine.add_argument("--labels", "-l", required=True, help="CSV with path,label,checked (the column `known` is read too)")
    refine.add_argument("--out", "-o", required=True, help="CSV to write: path,label,confidence")


def read_labels(path: Path) -> dict[str, tuple[str, bool]]:
    """Relative image path (as the engine names it) → (label, checked). The `checked` column is also read
    under its former name `known`."""
    import pandas as pd

    from turtle_core.names import unescape_name

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise LabelsFileError(f"cannot read {path}: {error}") from error
    if "checked" not in frame.columns and "known" in frame.columns:
        frame = frame.rename(columns={"known": "checked"})
    missing = {"path", "label", "checked"} - set(frame.columns)
    if missing:
        raise LabelsFileError(
            f"{path} lacks the column(s) {', '.join(sorted(missing))} (needs path,label,checked)"
        )
    rows: dict[str, tuple[str, bool]] = {}
    for number, (image, label, checked) in enumerate(
        zip(frame["path"], frame["label"], frame["checked"], strict=True), start=2
    ):
        flag = checked.strip().lower()
        if flag not in TRUE_WORDS | FALSE_WORDS:
            raise LabelsFileError(f"{path}, line {number}: checked must be 0 or 1, got {checked!r}")
        if flag in TRUE_WORDS and not label.strip():
            raise LabelsFileError(f"{path}, line {number}: a checked row needs a label")
        if label.strip():
            rows[unescape_name(image)] = (label.strip(), flag in TRUE_WORDS)
    return rows


def run(args: argparse.Namespace) -> int:
    from turtle_core.atomic import atomic_write_text
    from turtle_core.cli.common import csv_text
    from turtle_core.discovery.refine import refine_labels
    from turtle_core.names import display_name, escape_name
    from turtle_core.operations.project import Project, ProjectError

    try:
        project = Project.open(args.folder)
        discovery = project.discovery
        if discovery is None:
            raise ProjectError(
                f"{display_name(args.folder)} has no discovery yet: run `python -m turtle_core discover` first."
            )
        given = read_labels(Path(args.labels))
        spaces = project.spaces(discovery)
    except (ProjectError, LabelsFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    curation = project.curation
    paths = [record.path for record in discovery.images]
    names: list[str] = []
    checked = np.zeros(len(paths), bool)
    origin: list[str] = []  # the project's cluster name: what a checked label confirms or corrects
    defaulted = 0
    for row, image in enumerate(paths):
        cluster = int(curation.assignments[row]) if curation is not None else int(discovery.labels[row])
        current = curation.name_of(cluster) if curation is not None and cluster >= 0 else f"Cluster {cluster}"
        origin.append(current)
        if image in given:
            names.append(given[image][0])
            checked[row] = given[image][1]
        else:  # not in LABELS: its current cluster's name is the starting point
            names.append(current)
            defaulted += 1
    unknown_paths = sorted(set(given) - set(paths))
    classes, codes = np.unique(np.asarray(names + origin, dtype=object), return_inverse=True)
    codes, origin_codes = codes[: len(names)], codes[len(names) :]
    result = refine_labels(spaces, codes, checked, origin=origin_codes)
    corrected = checked & (origin_codes != codes)
    rows = [
        [escape_name(image), classes[code], f"{float(conf):.4f}"]
        for image, code, conf in zip(paths, result.labels, result.confidence, strict=True)
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "path,label,confidence\n" + csv_text(rows))
    changed = int((result.labels != codes).sum())
    print(
        f"{len(paths)} images: {int(checked.sum())} checked ({int(corrected.sum())} of them fixes), {changed} "
        f"re-labelled, {np.unique(result.labels).size} labels; wrote {display_name(out)}",
        file=sys.stderr,
    )
    if result.cutoff is None and int(checked.sum()):
        print(
            "nothing re-labelled: the checked rows do not show yet that the learner's changes would fix more "
            "labels than they break; check more images (moving the wrong ones) and run it again",
            file=sys.stderr,
        )
    if defaulted:
        print(
            f"{defaulted} images were not in {display_name(args.labels)}: started from their cluster's name",
            file=sys.stderr,
        )
    if unknown_paths:
        print(
            f"{len(unknown_paths)} rows of {display_name(args.labels)} name no image of the last discovery "
            f"(ignored), e.g. {display_name(unknown_paths[0])}",
            file=sys.stderr,
        )
    return 0
