"""The marker file that proves a folder is one of this product's exports.

Only a folder that carries it may be replaced by a new export: a folder that merely looks like an
export (a `manifest.csv` of the user's own, say) is never deleted, whatever the flags.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

MARKER = ".turtle-export.json"
MARKER_FORMAT_VERSION = 2  # 1 (older exports): exported_by, mode, n_images; 2 adds version, time, entries
EXPORTED_BY = "turtle-labels"
_MAX_MARKER_BYTES = 1 << 20
# What an export in progress, or one killed, may leave inside the destination (`export/staging.py`):
# its staging folder, the previous entries swapped out, and the marker's temp file.
_STAGING_NAME = re.compile(
    r"^(?:\.turtle-(?:partial|old)-[0-9a-f]{8}|\.turtle-export\.json\.[A-Za-z0-9_]+\.tmp)$"
)


@dataclass(frozen=True)
class ExportCheck:
    """Whether a folder may be replaced by a new export, and if not, why (a sentence for people)."""

    replaceable: bool
    reason: str = ""


def write_marker(folder: Path, mode: str, n_images: int) -> None:
    """Write the marker into a finished export `folder`, listing what the export put at its top."""
    entries = sorted(entry.name for entry in os.scandir(folder) if entry.name != MARKER)
    record = {
        "exported_by": EXPORTED_BY,
        "format_version": MARKER_FORMAT_VERSION,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": mode,
        "n_images": int(n_images),
        "entries": entries,
    }
    (folder / MARKER).write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")


def check_replaceable(folder: Path) -> ExportCheck:
    """May `folder` (an existing, non-empty folder) be replaced? Only when it carries our marker and
    holds nothing at its top that the export did not write there."""
    marker = folder / MARKER
    if all(is_staging_name(entry.name) for entry in os.scandir(folder)):
        return ExportCheck(True)  # only what a killed export left: the next export cleans it
    if marker.is_symlink() or not marker.is_file():
        return ExportCheck(
            False,
            f"{folder} is not empty and was not made by this app's export (it has no {MARKER} marker), "
            "so it is never replaced. Choose an empty or new folder.",
        )
    record = _read_marker(marker)
    if record is None:
        return ExportCheck(
            False, f"{folder} has a {MARKER} file that this app did not write, so it is never replaced."
        )
    entries = record.get("entries")
    if isinstance(entries, list):  # marker format 1 did not list them
        extra = _extra_entries(folder, entries)
        if extra:
            shown = ", ".join(extra[:3]) + (", …" if len(extra) > 3 else "")
            return ExportCheck(
                False,
                f"{folder} is a previous export, but files were added to it since ({shown}); it is not "
                "replaced so that they are not lost. Move them out or choose another folder.",
            )
    return ExportCheck(True)


def is_staging_name(name: str) -> bool:
    """Whether a top-level entry of an export folder is an export's own staging leftover (cleaned by
    the next export, never counted as a file the user added)."""
    return bool(_STAGING_NAME.match(name))


def marker_record(folder: Path) -> dict | None:
    """The marker of `folder` when it is a real marker of this app (not a link), else None."""
    marker = folder / MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    return _read_marker(marker)


def _read_marker(marker: Path) -> dict | None:
    try:
        if marker.stat().st_size > _MAX_MARKER_BYTES:
            return None
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("exported_by") != EXPORTED_BY:
        return None
    return record


def _extra_entries(folder: Path, written: Collection[object]) -> list[str]:
    known = {str(name) for name in written} | {MARKER}
    return sorted(
        entry.name
        for entry in os.scandir(folder)
        if entry.name not in known and not is_staging_name(entry.name)
    )
