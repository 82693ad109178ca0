"""Labels made elsewhere, read into (image, label) rows: a CSV (`path,label`), a Label Studio JSON export
(image classification) or an ImageFolder tree of a sorted subset (`root/<label>/**/<image>`).

Reading never stops at a bad row: every row that cannot be used is kept as a `LabelProblem` with its row
number and why, and the good rows are returned. Which folder image a row means is decided later, against
the folder's scan (`match_rows`): by relative path for a CSV, by the path in the task's URL for Label Studio,
by content for an ImageFolder tree (its files are copies).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from turtle_core.constants import IMAGE_EXTENSIONS
from turtle_core.ingest.scan import ImageRecord, hash_bytes
from turtle_core.names import unescape_name


@dataclass(frozen=True)
class LabelRow:
    """One label given to one image. `where` is the row's place in its file (a line, a task, a file path)."""

    where: str
    label: str
    path: str = ""  # relative to the folder ("/" separators), or a URL's path to match by its end
    content_hash: str = ""  # for an ImageFolder tree: the file's content (its path is elsewhere)


@dataclass(frozen=True)
class LabelProblem:
    where: str
    reason: str


@dataclass
class LabelRows:
    rows: list[LabelRow] = field(default_factory=list)
    problems: list[LabelProblem] = field(default_factory=list)


class LabelsFileError(ValueError):
    """The labels cannot be read at all (not a problem of single rows); the message says why."""


def read_labels_csv(data: bytes, name: str = "labels.csv") -> LabelRows:
    """`path,label` rows (paths relative to the folder, as our CSVs write them: `\\xNN` for bytes that are not
    UTF-8); other columns are ignored. Row numbers count the header as line 1."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LabelsFileError(f"{name} is not UTF-8 text ({error.reason})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = {"path", "label"} - set(reader.fieldnames or [])
    if missing:
        raise LabelsFileError(f"{name} lacks the column(s) {', '.join(sorted(missing))} (needs path,label)")
    found = LabelRows()
    for number, record in enumerate(reader, start=2):
        where = f"line {number}"
        path, label = (record.get("path") or "").strip(), (record.get("label") or "").strip()
        if not path:
            found.problems.append(LabelProblem(where, "no path"))
        elif not label:
            found.problems.append(LabelProblem(where, f"{path}: empty label"))
        else:
            found.rows.append(LabelRow(where, label, path=unescape_name(path).replace(os.sep, "/")))
    return found


def read_label_studio(data: bytes, name: str = "export.json") -> LabelRows:
    """A Label Studio JSON export: per task, the image (`data.image`, a URL whose path ends with the image's
    path in the folder) and the choice of its last annotation that was not cancelled (else its prediction)."""
    try:
        tasks = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as error:
        raise LabelsFileError(f"{name} is not a Label Studio JSON export ({error})") from None
    if not isinstance(tasks, list):
        raise LabelsFileError(f"{name} is not a Label Studio JSON export (a list of tasks)")
    found = LabelRows()
    for number, task in enumerate(tasks, start=1):
        where = f"task {number}"
        image = task.get("data", {}).get("image") if isinstance(task, dict) else None
        if not isinstance(image, str) or not image:
            found.problems.append(LabelProblem(where, "no image"))
            continue
        label = _choice(task)
        if not label:
            found.problems.append(LabelProblem(where, f"{image}: no choice (not labelled)"))
            continue
        found.rows.append(LabelRow(where, label, path=_url_path(image)))
    return found


def read_image_folder_tree(root: Path) -> LabelRows:
    """`root/<label>/**/<image>`: every image file under a class sub-folder, identified by its content."""
    if not root.is_dir():
        raise LabelsFileError(f"{root} is not a folder")
    found = LabelRows()
    for label_dir in sorted(
        path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")
    ):
        for file in sorted(label_dir.rglob("*")):
            if not file.is_file() or file.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            where = str(file.relative_to(root))
            try:
                digest = hash_bytes(file.read_bytes())
            except OSError as error:
                found.problems.append(LabelProblem(where, f"unreadable ({error.strerror})"))
                continue
            found.rows.append(LabelRow(where, label_dir.name, content_hash=digest))
    if not found.rows and not found.problems:
        raise LabelsFileError(f"{root} has no images in class sub-folders")
    return found


@dataclass(frozen=True)
class MatchedLabels:
    """Rows matched to images of the folder's scan: path -> label, and the rows that matched nothing."""

    labels: dict[str, str]
    problems: list[LabelProblem]


def match_rows(found: LabelRows, images: Sequence[ImageRecord], skipped: Iterable[str] = ()) -> MatchedLabels:
    """Which scanned image each row means. A row that matches no image, names a file the scan could not use
    (`skipped`), or gives an image a second label is a problem (the first label stays)."""
    by_path = {record.path: record for record in images}
    by_hash: dict[str, list[str]] = {}
    for record in images:
        by_hash.setdefault(record.content_hash, []).append(record.path)
    unusable = set(skipped)
    suffixes = _suffix_index(by_path)
    labels: dict[str, str] = {}
    origin: dict[str, str] = {}
    problems = list(found.problems)
    for row in found.rows:
        if row.content_hash:
            paths = by_hash.get(row.content_hash, [])
        else:
            paths = [row.path] if row.path in by_path else _by_suffix(row.path, suffixes)
        if not paths:
            reason = (
                "cannot be read as an image" if row.path in unusable else "matches no image of the folder"
            )
            problems.append(LabelProblem(row.where, f"{row.path or row.where}: {reason}"))
            continue
        for path in paths:
            if path in labels:
                problems.append(
                    LabelProblem(row.where, f"{path}: labelled again (kept {origin[path]}'s label)")
                )
                continue
            labels[path], origin[path] = row.label, row.where
    return MatchedLabels(labels, problems)


def _choice(task: dict) -> str:
    for annotation in reversed(task.get("annotations") or []):
        if isinstance(annotation, dict) and not annotation.get("was_cancelled"):
            label = _first_choice(annotation.get("result"))
            if label:
                return label
    for prediction in reversed(task.get("predictions") or []):
        if isinstance(prediction, dict):
            label = _first_choice(prediction.get("result"))
            if label:
                return label
    return ""


def _first_choice(result: object) -> str:
    for item in result if isinstance(result, list) else []:
        choices = item.get("value", {}).get("choices") if isinstance(item, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], str) and choices[0].strip():
            return choices[0].strip()
    return ""


def _url_path(url: str) -> str:
    """The file path a Label Studio image URL names (`/data/local-files/?d=a/b.png`, a file URL, or a plain
    path); percent-escapes decoded to the bytes they stand for."""
    parsed = urlparse(url)
    given = parse_qs(parsed.query).get("d")
    raw = given[0] if given else parsed.path
    return os.fsdecode(
        unquote(raw, encoding="utf-8", errors="surrogateescape").encode("utf-8", "surrogateescape")
    )


def _by_suffix(path: str, suffixes: dict[str, list[str]]) -> list[str]:
    """The folder path that `path` ends with (the longest, when several do), as a one-element list."""
    ends = [known for known in suffixes.get(_tail(path), []) if path == known or path.endswith("/" + known)]
    return [max(ends, key=len)] if ends else []


def _tail(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _suffix_index(by_path: dict[str, ImageRecord]) -> dict[str, list[str]]:
    """File name -> the folder's paths with that name (a URL path matches the one whose whole path it ends with)."""
    index: dict[str, list[str]] = {}
    for path in by_path:
        index.setdefault(_tail(path), []).append(path)
    return index
