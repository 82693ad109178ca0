"""Export the curated labels as a dataset; the source images are only ever read.

This module writes the tree and puts it in place; `naming` makes folder and file names safe,
`formats` writes the manifests and metadata, `marker` proves which folders are our exports.

Everything is built in a staging folder and put in place only when complete (`staging`: beside `dest`
when its parent may be written, else inside it; a re-export keeps the folder itself and swaps its
entries; what a killed export left is cleaned by the next one). Every export carries a marker file
(`MARKER`); a non-empty folder without it is never replaced, whatever the flags. With `within`, source
images that lie (through a link) outside those folders are not exported, and nothing is written
outside them. Source paths in the manifests are written with
`turtle_core.names.escape_name` (undecodable bytes as `\\xNN`; `unescape_name` reverses it).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from turtle_core.export import staging as stage
from turtle_core.export.formats import (
    HF_METADATA,
    HF_README,
    LS_CONFIG,
    LS_TASKS,
    MANIFEST_COLUMNS,
    MANIFEST_CSV,
    MANIFEST_PARQUET,
    ExportError,
    check_lengths,
    manifest_csv_bytes,
    manifest_frame,
    write_metadata,
)
from turtle_core.export.marker import MARKER, check_replaceable, is_staging_name, write_marker
from turtle_core.export.naming import (
    MAX_NAME_BYTES,
    safe_file_name,
    sanitize_label,
    unique_folder_names,
    valid_unicode,
)
from turtle_core.names import display_name, has_undecodable
from turtle_core.paths import ReadRoots, is_within, open_within
from turtle_core.progress import Progress, ProgressMeter, check_cancel

__all__ = [  # the export's public names, wherever they live
    "ALL_FORMATS",
    "MANIFEST_COLUMNS",
    "MAX_NAME_BYTES",
    "ExportError",
    "ExportExists",
    "ExportReport",
    "export_dataset",
    "manifest_csv_bytes",
    "manifest_frame",
    "sanitize_label",
    "unique_folder_names",
]

ExportMode = Literal["copy", "hardlink", "symlink"]
ALL_FORMATS: tuple[str, ...] = ("imagefolder", "csv", "parquet", "hf", "labelstudio")
# Label folders may not take these names (compared case-insensitively).
ROOT_FILES: tuple[str, ...] = (
    MANIFEST_CSV,
    MANIFEST_PARQUET,
    HF_METADATA,
    HF_README,
    LS_TASKS,
    LS_CONFIG,
    MARKER,
)
_LINK_FALLBACK_ERRNOS = {
    errno.EXDEV,
    errno.EPERM,
    errno.EMLINK,
    errno.ENOTSUP,
    errno.EOPNOTSUPP,
    errno.EACCES,
}


class ExportExists(ExportError):
    """The destination already holds files and was not allowed to be replaced."""


@dataclass
class ExportReport:
    """What an export wrote: counts, label → folder names, the manifest files, and warnings."""

    dest: Path
    n_exported: int
    n_excluded: int
    label_folders: dict[str, str]
    files: list[str]
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- export


def export_dataset(
    source_root: Path,
    paths: Sequence[str],
    labels: Sequence[str | None],
    cluster_ids: Sequence[int],
    confidence: Sequence[float],
    checked: Sequence[bool],
    dest: Path,
    *,
    mode: ExportMode = "copy",
    formats: Collection[str] = ALL_FORMATS,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    labelstudio_root: Path | None = None,
    quality: Mapping[str, Sequence[int]] | None = None,
    within: ReadRoots = None,
) -> ExportReport:
    """Write the labeled dataset to `dest`: an ImageFolder tree `<label>/<file>` plus manifests
    (CSV, Parquet), Hugging Face `metadata.jsonl` + `README.md`, and Label Studio tasks + config.

    `paths` are relative to `source_root`; a None label means excluded (listed in the manifests only).
    `mode="hardlink"` shares the files with the originals (editing one in place edits both); it falls
    back to copying across file systems. Symlinks are absolute. A non-empty `dest` is replaced only
    with `overwrite=True` and only if it is a previous export. `labelstudio_root` is Label Studio's
    LOCAL_FILES_DOCUMENT_ROOT (default: the folder that contains `dest`). `quality` (flag name → 0/1 per
    image) adds the image-quality flags to every manifest and metadata file. `within` (resolved folders):
    the destination must lie inside them, staging stays inside them, and sources outside them are
    skipped with a warning."""
    n = check_lengths(paths, labels, cluster_ids, confidence, checked)
    if mode not in ("copy", "hardlink", "symlink"):
        raise ExportError(f"unknown export mode {mode!r}: use 'copy', 'hardlink' or 'symlink'")
    wanted = set(formats)
    unknown = wanted - set(ALL_FORMATS)
    if unknown:
        raise ExportError(f"unknown export formats {sorted(unknown)}; known: {', '.join(ALL_FORMATS)}")
    source_root = Path(source_root).resolve()
    dest = Path(os.path.abspath(dest))
    if not is_within(dest, within):
        raise ExportError(f"{display_name(str(dest))} is outside the folders this app may write to")
    _check_destination(source_root, dest, overwrite)
    rel_paths = [_check_relative(p) for p in paths]

    warnings: list[str] = []
    write_tree = bool(wanted & {"imagefolder", "hf", "labelstudio"})
    if write_tree and "imagefolder" not in wanted:
        warnings.append("The image tree was written because Hugging Face / Label Studio files refer to it.")
    label_names = sorted({valid_unicode(str(label)) for label in labels if label is not None})
    folders = unique_folder_names(label_names, reserved=ROOT_FILES) if write_tree else {}
    targets = _target_names(rel_paths, labels, folders) if write_tree else {}
    sample = _stat_sample(source_root, rel_paths, targets)

    staging = stage.open_staging(dest, within)
    partial = staging.path
    try:
        exported = [""] * n
        if write_tree:
            exported = _write_tree(
                source_root, rel_paths, targets, partial, mode, warnings, progress, cancel, within
            )
        frame = manifest_frame(paths, labels, cluster_ids, confidence, checked, exported, quality)
        files = write_metadata(frame, wanted, partial, dest, labelstudio_root, label_names, warnings)
        if any(has_undecodable(str(p)) for p in paths):
            warnings.append(
                "Some source file names are not valid UTF-8: the manifests write each such byte as \\xNN "
                "(and a backslash as \\\\); turtle_core.names.unescape_name gives the original name back."
            )
        write_marker(partial, mode, n)
        check_cancel(cancel)
        with stage.destination_lock(dest):
            if stage.remove_leftovers(dest):
                warnings.append("What an interrupted earlier export left there was cleaned up.")
            _check_destination(source_root, dest, overwrite)  # again: the folder may have changed meanwhile
            stage.install(staging, dest)
    except BaseException:
        stage.discard_staging(staging, dest)
        raise
    warnings.extend(_changed_sources(source_root, sample))
    return ExportReport(
        dest=dest,
        n_exported=sum(1 for e in exported if e),
        n_excluded=sum(1 for label in labels if label is None),
        label_folders=folders,
        files=files,
        warnings=warnings,
    )


def _check_relative(path: str) -> str:
    # A backslash separates folders only on Windows; elsewhere it is an ordinary file name character.
    pure = PurePosixPath(str(path).replace("\\", "/") if os.sep == "\\" else str(path))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ExportError(f"image path {path!r} must be relative to the image folder")
    return str(path)


def destination_problem(source_root: Path, dest: Path) -> str | None:
    """Why nothing may be written to `dest` for the images of `source_root` (None: the place is fine):
    the image folder itself, a folder inside it (its copies would be scanned as new images) or one that
    holds it. The export checks it before and after writing; the pages check it as the folder is typed."""
    source = Path(source_root).resolve()
    resolved = Path(dest).resolve()
    shown, images = display_name(str(dest)), display_name(str(source))
    if resolved == source or source in resolved.parents:
        return (
            f"The export folder {shown} is inside the image folder {images}; its copies would be scanned as "
            "new images. Choose a folder outside it."
        )
    if resolved in source.parents:
        return f"The export folder {shown} contains the image folder {images}; choose another one."
    return None


def _check_destination(source_root: Path, dest: Path, overwrite: bool) -> None:
    if not source_root.is_dir():
        raise ExportError(f"image folder {source_root} does not exist")
    problem = destination_problem(source_root, dest)
    if problem is not None:
        raise ExportError(problem)
    if not (dest.exists() or dest.is_symlink()):
        return
    if not dest.is_dir():
        raise ExportExists(f"{dest} exists and is not a folder")
    if all(is_staging_name(entry.name) for entry in os.scandir(dest)):
        return  # empty, or only what a killed export left (cleaned before the new one goes in)
    check = check_replaceable(dest)
    if not check.replaceable:
        raise ExportExists(check.reason)
    if not overwrite:
        raise ExportExists(
            f"{dest} already exists: it is a previous export; allow replacing it, or choose another folder"
        )


def _target_names(
    rel_paths: Sequence[str], labels: Sequence[str | None], folders: dict[str, str]
) -> dict[int, str]:
    """Row → exported relative path. Same-named files in one label folder get a short hash of their
    source path (the first in path order keeps the plain name), so names do not depend on row order."""
    by_folder: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        if label is not None:
            by_folder.setdefault(folders[valid_unicode(str(label))], []).append(row)
    targets: dict[int, str] = {}
    for folder, rows in by_folder.items():
        taken: set[str] = set()
        for row in sorted(rows, key=lambda r: os.fsencode(rel_paths[r])):
            name = safe_file_name(rel_paths[row].rsplit("/", 1)[-1])
            if name.casefold() in taken:
                stem, ext = os.path.splitext(name)
                digest = hashlib.sha1(os.fsencode(rel_paths[row])).hexdigest()
                name = f"{stem}_{digest[:8]}{ext}"
                k = 2
                while name.casefold() in taken:
                    name = f"{stem}_{digest[:8]}_{k}{ext}"
                    k += 1
            taken.add(name.casefold())
            targets[row] = f"{folder}/{name}"
    return targets


def _write_tree(
    source_root: Path,
    rel_paths: Sequence[str],
    targets: dict[int, str],
    out: Path,
    mode: ExportMode,
    warnings: list[str],
    progress: Callable[[Progress], None] | None,
    cancel: threading.Event | None,
    within: ReadRoots = None,
) -> list[str]:
    exported = [""] * len(rel_paths)
    meter = ProgressMeter("export", len(targets), progress)
    fallbacks = 0
    missing: list[str] = []
    made: set[str] = set()
    for row in sorted(targets):
        check_cancel(cancel)
        rel = targets[row]
        folder = rel.split("/", 1)[0]
        if folder not in made:
            (out / folder).mkdir()
            made.add(folder)
        src = source_root / rel_paths[row]
        dst = out / rel
        try:
            fallbacks += _materialise(src, dst, mode, within)
            exported[row] = rel
        except OSError as error:
            missing.append(f"{display_name(rel_paths[row])} ({error.strerror or error})")
        meter.advance(1)
    if fallbacks:
        how = "hard links" if mode == "hardlink" else "symbolic links"
        warnings.append(
            f"{fallbacks} files were copied because {how} are not possible there (e.g. another drive)."
        )
    if mode == "hardlink" and fallbacks < len(targets):
        warnings.append("Hard-linked files share storage with the originals: do not edit them in place.")
    if missing:
        shown = "; ".join(missing[:5]) + ("; …" if len(missing) > 5 else "")
        warnings.append(f"{len(missing)} images could not be read and were not exported: {shown}")
    return exported


def _materialise(src: Path, dst: Path, mode: ExportMode, within: ReadRoots = None) -> int:
    """Put `src` at `dst`; returns 1 when a link was impossible and the file was copied instead.
    With `within`, a source that lies outside those folders raises `OutsideReadRoots` (an OSError)."""
    if mode != "copy":
        if not src.is_file():
            raise FileNotFoundError(errno.ENOENT, "No such file", str(src))
        real = Path(os.path.realpath(src)) if within is not None else src
        if not is_within(real, within):
            open_within(src, within).close()  # raises with the reason
        try:
            if mode == "hardlink":
                os.link(real, dst)
            else:
                os.symlink(real.absolute(), dst)
            return 0
        except OSError as error:
            if error.errno not in _LINK_FALLBACK_ERRNOS:
                raise
    _copy(src, dst, within)
    return 0 if mode == "copy" else 1


def _copy(src: Path, dst: Path, within: ReadRoots) -> None:
    """`shutil.copy2` from the file actually opened (checked against `within`)."""
    if within is None:
        shutil.copy2(src, dst)
        return
    with open_within(src, within) as source, open(dst, "xb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    shutil.copystat(src, dst)


def _stat_sample(
    source_root: Path, rel_paths: Sequence[str], targets: dict[int, str]
) -> list[tuple[Path, int, int]]:
    rows = sorted(targets) or list(range(len(rel_paths)))
    step = max(1, len(rows) // 64)
    sample = []
    for row in rows[::step]:
        path = source_root / rel_paths[row]
        try:
            st = path.stat()
        except OSError:
            continue
        sample.append((path, st.st_size, st.st_mtime_ns))
    return sample


def _changed_sources(source_root: Path, sample: list[tuple[Path, int, int]]) -> list[str]:
    changed = []
    for path, size, mtime in sample:
        try:
            st = path.stat()
        except OSError:
            changed.append(str(path))
            continue
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            changed.append(str(path))
    if not changed:
        return []
    return [f"{len(changed)} source images changed while exporting (by another program?): {changed[0]}"]
