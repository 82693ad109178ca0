"""Labels in: labels a curator made elsewhere become checked images of the folder's curation, as one edit.

Rows that cannot be used (an unknown path, an empty label, an image labelled twice, an excluded or unreadable
image, one the curation does not hold yet) are reported with their row numbers and skipped; the usable rows
are imported together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from turtle_core.ingest.labels import LabelProblem, LabelRows, match_rows
from turtle_core.state.edits import Edit, LabelImages
from turtle_core.state.project_state import Snapshot


@dataclass(frozen=True)
class ImportReport:
    n_imported: int
    names: tuple[str, ...]  # the distinct labels imported
    new_clusters: tuple[str, ...]  # those that no cluster had before
    problems: tuple[LabelProblem, ...]

    def message(self) -> str:
        if not self.n_imported:
            text = "No label was imported."
        else:
            text = (
                f"Imported {self.n_imported:,} label(s) in {len(self.names)} categor"
                f"{'y' if len(self.names) == 1 else 'ies'}: those images are checked"
            )
            if self.new_clusters:
                text += f"; new clusters: {', '.join(repr(name) for name in self.new_clusters)}"
            text += "."
        if self.problems:
            text += f" {len(self.problems):,} row(s) skipped (listed with their row numbers)."
        return text


def plan_import(
    snap: Snapshot, found: LabelRows, scanned: list, skipped: list[str], origin: str = ""
) -> tuple[Edit | None, ImportReport]:
    """The edit importing `found` into `snap`'s curation (None when no row is usable) and its report.
    `scanned`: the folder's usable images as scanned; `skipped`: the paths the scan or the embedding could
    not use."""
    matched = match_rows(found, scanned, skipped)
    problems = list(matched.problems)
    rows_of = {record.path: row for row, record in enumerate(snap.images)}
    assignments = snap.curation.assignments
    paths, names = [], []
    for path, label in matched.labels.items():
        row = rows_of.get(path)
        if row is None:
            problems.append(
                LabelProblem(path, "not in the curation yet (Rescan first) or could not be embedded")
            )
        elif assignments[row] < 0:
            problems.append(LabelProblem(path, "excluded from the dataset (restore it first)"))
        else:
            paths.append(path)
            names.append(label)
    existing = set(snap.curation.names.values())
    distinct = tuple(dict.fromkeys(names))
    report = ImportReport(
        len(paths), distinct, tuple(n for n in distinct if n not in existing), tuple(problems)
    )
    if not paths:
        return None, report
    edit = LabelImages(
        discovery_id=snap.discovery_id,
        images=tuple(paths),
        names=tuple(names),
        description=f"Imported {len(paths)} label(s) in {len(distinct)} categories",
        origin=origin,
    )
    return edit, report


def import_labels(
    snapshot: Callable[[], Snapshot | None],
    apply: Callable[[Edit], object],
    found: LabelRows,
    scanned: list,
    skipped: list[str],
    origin: str = "",
) -> ImportReport:
    """Plan the import on the current snapshot and apply it (one undoable edit)."""
    snap = snapshot()
    if snap is None:
        raise ValueError("run discovery first: there is no curation to import labels into")
    edit, report = plan_import(snap, found, scanned, skipped, origin)
    if edit is not None:
        apply(edit)
    return report
