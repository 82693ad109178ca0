"""`python -m turtle_core refine FOLDER --labels LABELS.csv --out OUT.csv`: propagate a curator's fixes.

LABELS has `path,label,checked` for the folder's images (paths relative to FOLDER, as our CSVs write them;
`checked` is 1 where a curator confirmed or fixed the label, 0 where it is only a starting point; the column's
former name `known` is accepted; an `excluded` column, as our manifests carry, marks excluded rows). Every
usable image of the folder's last discovery gets a row in OUT (`path,label,confidence,excluded`); checked
rows keep their label. Excluded images (in LABELS, or in the app's curation when LABELS does not name them)
take no part and are written as excluded: no label, no confidence, `excluded` 1. The rule is the app's
"Propagate my fixes" (`turtle_core.discovery.refine`): a checked row whose label differs from its cluster's
name in the project is a fix, one that agrees a confirmation, and an unchecked row changes label only where,
on the checked rows, the learner made clearly more of those fixes than it broke confirmations.
The embeddings come from the cache and the images from the last discovery: nothing is recomputed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from turtle_core.constants import EXCLUDED
from turtle_core.names import escape_name

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f", ""})


class LabelsFileError(ValueError):
    """LABELS.csv cannot be used; the message says why."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    refine = commands.add_parser(
        "refine", help="re-label the images nobody checked, learning from the ones a curator checked"
    )
    refine.add_argument("folder", help="the folder of a previous `discover` (read only)")
    refine.add_argument(
        "--labels", "-l", required=True, help="CSV with path,label,checked (the column `known` is read too)"
    )
    refine.add_argument("--out", "-o", required=True, help="CSV to write: path,label,confidence,excluded")


def read_labels(path: Path) -> dict[str, tuple[str | None, bool]]:
    """Relative image path (as the engine names it) → (label, checked); the label is None for a row the
    optional `excluded` column marks. The `checked` column is also read under its former name `known`."""
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
    rows: dict[str, tuple[str | None, bool]] = {}
    excluded = frame["excluded"] if "excluded" in frame.columns else [""] * len(frame)
    for number, (image, label, checked, out) in enumerate(
        zip(frame["path"], frame["label"], frame["checked"], excluded, strict=True), start=2
    ):
        flag = checked.strip().lower()
        if flag not in TRUE_WORDS | FALSE_WORDS:
            raise LabelsFileError(f"{path}, line {number}: checked must be 0 or 1, got {checked!r}")
        if out.strip().lower() not in TRUE_WORDS | FALSE_WORDS:
            raise LabelsFileError(f"{path}, line {number}: excluded must be 0 or 1, got {out!r}")
        if out.strip().lower() in TRUE_WORDS:
            rows[unescape_name(image)] = (None, flag in TRUE_WORDS)
            continue
        if flag in TRUE_WORDS and not label.strip():
            raise LabelsFileError(f"{path}, line {number}: a checked row needs a label")
        if label.strip():
            rows[unescape_name(image)] = (label.strip(), flag in TRUE_WORDS)
    return rows


OUT_HEADER = "path,label,confidence,excluded\n"


def starting_labels(
    paths: list[str],
    given: dict[str, tuple[str | None, bool]],
    curation: Any,
    discovered: np.ndarray,
) -> tuple[list[str | None], np.ndarray, list[str], int]:
    """Each image's starting label (None: excluded), whether a curator checked it, what a checked label
    confirms or corrects (`origin`: the label LABELS gives most often in the image's cluster of the project,
    i.e. the cluster's name as LABELS spells it), and how many rows LABELS did not name (those start from
    their cluster's name in the app's curation, or stay excluded there)."""
    names: list[str | None] = []
    clusters = np.empty(len(paths), np.int64)
    checked = np.zeros(len(paths), bool)
    defaulted = 0
    for row, image in enumerate(paths):
        cluster = int(curation.assignments[row]) if curation is not None else int(discovered[row])
        clusters[row] = cluster
        current = (
            None
            if cluster == EXCLUDED
            else (curation.name_of(cluster) if curation is not None else f"Cluster {cluster}")
        )
        if image in given:
            names.append(given[image][0])
            checked[row] = given[image][1] and given[image][0] is not None
            continue
        names.append(current)
        defaulted += 1
    spelled: dict[int, str] = {}
    for cluster in np.unique(clusters):
        named = Counter(names[row] for row in np.flatnonzero(clusters == cluster) if names[row] is not None)
        spelled[int(cluster)] = named.most_common(1)[0][0] if named else ""
    origin = [spelled[int(cluster)] for cluster in clusters]
    return names, checked, origin, defaulted


def output_rows(
    paths: list[str], active: np.ndarray, labels: np.ndarray, confidence: np.ndarray
) -> list[list[str]]:
    """OUT's rows: refined label and confidence for active images, excluded ones written as excluded."""
    rows: list[list[str]] = []
    refined = iter(zip(labels, confidence, strict=True))
    for image, keep in zip(paths, active, strict=True):
        if keep:
            label, conf = next(refined)
            rows.append([escape_name(image), str(label), f"{float(conf):.4f}", "0"])
        else:
            rows.append([escape_name(image), "", "", "1"])
    return rows


def run(args: argparse.Namespace) -> int:
    from turtle_core.atomic import atomic_write_text
    from turtle_core.cli.common import csv_text
    from turtle_core.discovery.refine import refine_labels
    from turtle_core.names import display_name
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
    paths = [record.path for record in discovery.images]
    names, checked, origin, defaulted = starting_labels(paths, given, project.curation, discovery.labels)
    active = np.array([name is not None for name in names], dtype=bool)
    unknown_paths = sorted(set(given) - set(paths))
    kept = [n for n in names if n is not None]
    kept_origin = [o for o, n in zip(origin, names, strict=True) if n is not None]
    classes, all_codes = np.unique(np.asarray(kept + kept_origin, dtype=object), return_inverse=True)
    codes, origin_codes = all_codes[: len(kept)], all_codes[len(kept) :]
    corrected = checked[active] & (origin_codes != codes)
    cutoff = None
    if active.any():
        result = refine_labels(
            [np.asarray(X)[active] for X in spaces], codes, checked[active], origin=origin_codes
        )
        labels, confidence, cutoff = classes[result.labels], result.confidence, result.cutoff
        changed = int((result.labels != codes).sum())
    else:
        labels, confidence, changed = classes[:0], np.zeros(0), 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, OUT_HEADER + csv_text(output_rows(paths, active, labels, confidence)))
    print(
        f"{len(paths)} images: {int(checked.sum())} checked ({int(corrected.sum())} of them fixes), {changed} "
        f"re-labelled, {np.unique(labels).size} labels, {int((~active).sum())} excluded; wrote {display_name(out)}",
        file=sys.stderr,
    )
    if cutoff is None and int(checked.sum()):
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
