"""Export the curated labels as a dataset; the source images are only ever read.

Everything is built in a hidden sibling folder `<dest>.partial-<random>` and renamed into place at the
end, so an interrupted export never leaves a half-written `dest`, and an existing export is replaced
only when the new one is complete. Every export carries a marker file (`MARKER`); a non-empty folder
without it is never replaced, whatever the flags. Source paths in the manifests are written with
`turtle_core.names.escape_name` (undecodable bytes as `\\xNN`; `unescape_name` reverses it).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import threading
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

from turtle_core.export.marker import MARKER, check_replaceable, write_marker
from turtle_core.names import display_name, escape_name, has_undecodable, is_hidden_char
from turtle_core.progress import Progress, ProgressMeter, check_cancel

ExportMode = Literal["copy", "hardlink", "symlink"]
ALL_FORMATS: tuple[str, ...] = ("imagefolder", "csv", "parquet", "hf", "labelstudio")
MAX_NAME_BYTES = 100
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "exported_path",
    "label",
    "cluster_id",
    "confidence",
    "curated",
    "excluded",
)

MANIFEST_CSV = "manifest.csv"
MANIFEST_PARQUET = "manifest.parquet"
HF_METADATA = "metadata.jsonl"
HF_README = "README.md"
LS_TASKS = "labelstudio_tasks.json"
LS_CONFIG = "labelstudio_config.xml"
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

_FORBIDDEN = frozenset('<>:"/\\|?*')
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789\u00b9\u00b2\u00b3"]
    + ["CONIN$", "CONOUT$"]
)
# Hugging Face guesses train/validation/test splits from these words in folder and file names.
_HF_SPLIT_WORD = re.compile(
    r"(?:^|[-._ 0-9])(?:train|training|validation|valid|dev|val|test|testing|eval|evaluation)(?:[-._ 0-9]|$)"
)
_LINK_FALLBACK_ERRNOS = {
    errno.EXDEV,
    errno.EPERM,
    errno.EMLINK,
    errno.ENOTSUP,
    errno.EOPNOTSUPP,
    errno.EACCES,
}


class ExportError(ValueError):
    """The export cannot be done as asked (bad destination, bad inputs)."""


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


# --------------------------------------------------------------------------- names


def sanitize_label(name: str) -> str:
    """A folder name safe on Linux, macOS and Windows that stays close to `name` (Unicode kept)."""
    text = unicodedata.normalize("NFC", _valid_unicode(str(name)))
    chars = []
    for ch in text:
        if ch in _FORBIDDEN or is_hidden_char(ch):
            chars.append("_")
        elif ch.isspace():
            chars.append(" ")
        else:
            chars.append(ch)
    text = " ".join("".join(chars).split())
    # Leading dots hide folders (and `..` climbs); "__x" folders are skipped by Hugging Face datasets.
    text = text.strip(" .")
    if text.startswith("__"):
        text = "_" + text.lstrip("_")
    text = _truncate_utf8(text, MAX_NAME_BYTES).rstrip(" .")
    if not text:
        return "unnamed"
    stem, dot, rest = text.partition(".")
    if stem.rstrip(" ").upper() in _WINDOWS_RESERVED:
        text = _truncate_utf8(stem.rstrip(" ") + "_" + dot + rest, MAX_NAME_BYTES).rstrip(" .")
    return text


def unique_folder_names(names: Sequence[str], reserved: Collection[str] = ()) -> dict[str, str]:
    """Map each distinct name to a sanitized folder name, unique ignoring case ("Cat", "cat" → "Cat",
    "cat_2"), in the order given; `reserved` names are treated as already taken."""
    taken = {r.casefold() for r in reserved}
    folders: dict[str, str] = {}
    for name in names:
        if name in folders:
            continue
        base = sanitize_label(name)
        candidate, k = base, 2
        while candidate.casefold() in taken:
            suffix = f"_{k}"
            candidate = _truncate_utf8(base, MAX_NAME_BYTES - len(suffix)).rstrip(" .") + suffix
            k += 1
        taken.add(candidate.casefold())
        folders[name] = candidate
    return folders


def _safe_file_name(name: str) -> str:
    text = unicodedata.normalize("NFC", _valid_unicode(name))
    text = "".join("_" if ch in _FORBIDDEN or is_hidden_char(ch) else ch for ch in text)
    text = text.strip(" ").rstrip(".")
    if text.startswith("."):
        text = "_" + text[1:]
    stem, ext = os.path.splitext(text)
    if stem.upper() in _WINDOWS_RESERVED or stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem += "_"
    ext = ext if len(ext.encode("utf-8")) <= 16 else ""
    stem = _truncate_utf8(stem, 150 - len(ext.encode("utf-8"))) or "image"
    return stem + ext


def _valid_unicode(text: str) -> str:
    """Undo `surrogateescape` (non-UTF-8 bytes in file names) by replacing those bytes with '_'."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\ufffd", "_")


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


# --------------------------------------------------------------------------- manifest


def manifest_frame(
    paths: Sequence[str],
    labels: Sequence[str | None],
    cluster_ids: Sequence[int],
    confidence: Sequence[float],
    touched: Sequence[bool],
    exported_paths: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per image: path (source, relative), exported_path (relative to the export, or ""),
    label (None if excluded), cluster_id, confidence, curated, excluded."""
    n = _check_lengths(paths, labels, cluster_ids, confidence, touched)
    exported = [""] * n if exported_paths is None else list(exported_paths)
    if len(exported) != n:
        raise ExportError(f"exported_paths has {len(exported)} entries for {n} images")
    label_list = [None if label is None else _valid_unicode(str(label)) for label in labels]
    return pd.DataFrame(
        {
            "path": pd.array([escape_name(str(p)) for p in paths], dtype="string"),
            "exported_path": pd.array(exported, dtype="string"),
            "label": pd.array(label_list, dtype="string"),
            "cluster_id": np.asarray(cluster_ids, dtype=np.int64).reshape(n),
            "confidence": np.asarray(confidence, dtype=np.float64).reshape(n),
            "curated": np.asarray(touched, dtype=bool).reshape(n),
            "excluded": np.array([label is None for label in labels], dtype=bool).reshape(n),
        },
        columns=list(MANIFEST_COLUMNS),
    )


def manifest_csv_bytes(
    paths: Sequence[str],
    labels: Sequence[str | None],
    cluster_ids: Sequence[int],
    confidence: Sequence[float],
    touched: Sequence[bool],
    exported_paths: Sequence[str] | None = None,
) -> bytes:
    """The manifest as UTF-8 CSV (for a download button)."""
    frame = manifest_frame(paths, labels, cluster_ids, confidence, touched, exported_paths)
    return frame.to_csv(index=False).encode("utf-8")


def _check_lengths(*columns: Sequence) -> int:
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ExportError(
            "paths, labels, cluster_ids, confidence and touched must have one entry per image, got lengths "
            + ", ".join(str(len(c)) for c in columns)
        )
    return lengths.pop()


# --------------------------------------------------------------------------- export


def export_dataset(
    source_root: Path,
    paths: Sequence[str],
    labels: Sequence[str | None],
    cluster_ids: Sequence[int],
    confidence: Sequence[float],
    touched: Sequence[bool],
    dest: Path,
    *,
    mode: ExportMode = "copy",
    formats: Collection[str] = ALL_FORMATS,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    labelstudio_root: Path | None = None,
) -> ExportReport:
    """Write the labeled dataset to `dest`: an ImageFolder tree `<label>/<file>` plus manifests
    (CSV, Parquet), Hugging Face `metadata.jsonl` + `README.md`, and Label Studio tasks + config.

    `paths` are relative to `source_root`; a None label means excluded (listed in the manifests only).
    `mode="hardlink"` shares the files with the originals (editing one in place edits both); it falls
    back to copying across file systems. Symlinks are absolute. A non-empty `dest` is replaced only
    with `overwrite=True` and only if it is a previous export. `labelstudio_root` is Label Studio's
    LOCAL_FILES_DOCUMENT_ROOT (default: the folder that contains `dest`)."""
    n = _check_lengths(paths, labels, cluster_ids, confidence, touched)
    if mode not in ("copy", "hardlink", "symlink"):
        raise ExportError(f"unknown export mode {mode!r}: use 'copy', 'hardlink' or 'symlink'")
    wanted = set(formats)
    unknown = wanted - set(ALL_FORMATS)
    if unknown:
        raise ExportError(f"unknown export formats {sorted(unknown)}; known: {', '.join(ALL_FORMATS)}")
    source_root = Path(source_root).resolve()
    dest = Path(os.path.abspath(dest))
    _check_destination(source_root, dest, overwrite)
    rel_paths = [_check_relative(p) for p in paths]

    warnings: list[str] = []
    write_tree = bool(wanted & {"imagefolder", "hf", "labelstudio"})
    if write_tree and "imagefolder" not in wanted:
        warnings.append("The image tree was written because Hugging Face / Label Studio files refer to it.")
    label_names = sorted({_valid_unicode(str(label)) for label in labels if label is not None})
    folders = unique_folder_names(label_names, reserved=ROOT_FILES) if write_tree else {}
    targets = _target_names(rel_paths, labels, folders) if write_tree else {}
    sample = _stat_sample(source_root, rel_paths, targets)

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f"{dest.name}.partial-{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        exported = [""] * n
        if write_tree:
            exported = _write_tree(source_root, rel_paths, targets, partial, mode, warnings, progress, cancel)
        frame = manifest_frame(paths, labels, cluster_ids, confidence, touched, exported)
        files = _write_metadata(frame, wanted, partial, dest, labelstudio_root, label_names, warnings)
        if any(has_undecodable(str(p)) for p in paths):
            warnings.append(
                "Some source file names are not valid UTF-8: the manifests write each such byte as \\xNN "
                "(and a backslash as \\\\); turtle_core.names.unescape_name gives the original name back."
            )
        write_marker(partial, mode, n)
        check_cancel(cancel)
        _check_destination(source_root, dest, overwrite)  # again: the folder may have changed meanwhile
        _swap_into_place(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
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


def _check_destination(source_root: Path, dest: Path, overwrite: bool) -> None:
    if not source_root.is_dir():
        raise ExportError(f"image folder {source_root} does not exist")
    resolved = dest.resolve()
    if resolved == source_root or source_root in resolved.parents:
        raise ExportError(
            f"the export folder {dest} is inside the image folder {source_root}; its copies would be "
            "scanned as new images. Choose a folder outside it."
        )
    if resolved in source_root.parents:
        raise ExportError(
            f"the export folder {dest} contains the image folder {source_root}; choose another one"
        )
    if not (dest.exists() or dest.is_symlink()):
        return
    if not dest.is_dir():
        raise ExportExists(f"{dest} exists and is not a folder")
    if not any(dest.iterdir()):
        return
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
            by_folder.setdefault(folders[_valid_unicode(str(label))], []).append(row)
    targets: dict[int, str] = {}
    for folder, rows in by_folder.items():
        taken: set[str] = set()
        for row in sorted(rows, key=lambda r: os.fsencode(rel_paths[r])):
            name = _safe_file_name(rel_paths[row].rsplit("/", 1)[-1])
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
            fallbacks += _materialise(src, dst, mode)
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


def _materialise(src: Path, dst: Path, mode: ExportMode) -> int:
    """Put `src` at `dst`; returns 1 when a link was impossible and the file was copied instead."""
    if mode == "copy":
        shutil.copy2(src, dst)
        return 0
    if not src.is_file():
        raise FileNotFoundError(errno.ENOENT, "No such file", str(src))
    try:
        if mode == "hardlink":
            os.link(src, dst)
        else:
            os.symlink(src.absolute(), dst)
        return 0
    except OSError as error:
        if error.errno not in _LINK_FALLBACK_ERRNOS:
            raise
    shutil.copy2(src, dst)
    return 1


def _write_metadata(
    frame: pd.DataFrame,
    wanted: set[str],
    out: Path,
    final_dest: Path,
    labelstudio_root: Path | None,
    label_names: list[str],
    warnings: list[str],
) -> list[str]:
    files: list[str] = []
    if "csv" in wanted:
        frame.to_csv(out / MANIFEST_CSV, index=False, encoding="utf-8")
        files.append(MANIFEST_CSV)
    if "parquet" in wanted:
        with open(out / MANIFEST_PARQUET, "wb") as handle:  # pyarrow cannot open a non-UTF-8 path itself
            frame.to_parquet(handle, index=False)
        files.append(MANIFEST_PARQUET)
    rows = frame[frame["exported_path"] != ""]
    if "hf" in wanted:
        _write_hf(rows, out, warnings)
        files.extend([HF_METADATA, HF_README])
    if "labelstudio" in wanted:
        root = Path(os.path.abspath(labelstudio_root)) if labelstudio_root is not None else final_dest.parent
        _write_labelstudio(rows, out, final_dest, root, label_names, warnings)
        files.extend([LS_TASKS, LS_CONFIG])
    return files


def _write_hf(rows: pd.DataFrame, out: Path, warnings: list[str]) -> None:
    with open(out / HF_METADATA, "w", encoding="utf-8") as handle:
        for rec in rows.itertuples(index=False):
            line = {
                "file_name": rec.exported_path,
                "label": rec.label,
                "cluster_id": int(rec.cluster_id),
                "confidence": _json_float(rec.confidence),
                "curated": bool(rec.curated),
                "source_path": rec.path,
            }
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    # The README pins a single split so `load_dataset(dest)` does not guess splits from names.
    (out / HF_README).write_text(
        '---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: "**"\n---\n\n'
        "# Labeled images\n\nExported by turtle-labels: one folder per label, `metadata.jsonl` for Hugging Face\n"
        "`datasets`, `manifest.csv` / `manifest.parquet` listing every source image (excluded ones too), and\n"
        "`labelstudio_tasks.json` + `labelstudio_config.xml` for Label Studio.\n",
        encoding="utf-8",
    )
    risky = sorted(
        {p for p in rows["exported_path"] if any(_HF_SPLIT_WORD.search(part) for part in p.split("/"))}
    )
    if risky:
        warnings.append(
            f"Names such as '{risky[0]}' contain words that Hugging Face reads as split names (train/val/test): "
            "load with load_dataset(str(dest)) (the README pins one split) rather than data_dir=."
        )


def _write_labelstudio(
    rows: pd.DataFrame, out: Path, final_dest: Path, root: Path, label_names: list[str], warnings: list[str]
) -> None:
    try:
        base = final_dest.relative_to(root).as_posix()
    except ValueError:
        base = None
        warnings.append(
            f"Label Studio: {display_name(final_dest)} is not inside {display_name(root)}; "
            "tasks use file:// URLs instead."
        )
    tasks = []
    for rec in rows.itertuples(index=False):
        if base is not None:
            rel = f"{base}/{rec.exported_path}" if base not in ("", ".") else rec.exported_path
            url = "/data/local-files/?d=" + quote(os.fsencode(rel), safe="/")
        else:
            url = (final_dest / rec.exported_path).as_uri()
        prediction = {
            "model_version": "turtle",
            "result": [
                {
                    "from_name": "choice",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": [rec.label]},
                }
            ],
        }
        score = _json_float(rec.confidence)
        if score is not None:
            prediction["score"] = score
        tasks.append({"data": {"image": url, "source_path": rec.path}, "predictions": [prediction]})
    (out / LS_TASKS).write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in label_names)
    config = (
        "<View>\n"
        f"  <!-- Serve images with LOCAL_FILES_SERVING_ENABLED=true and "
        f"LOCAL_FILES_DOCUMENT_ROOT={escape(re.sub('-{2,}', '-', escape_name(root)))} -->\n"
        '  <Image name="image" value="$image"/>\n'
        '  <Choices name="choice" toName="image" choice="single" showInLine="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )
    (out / LS_CONFIG).write_text(config, encoding="utf-8")


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _swap_into_place(partial: Path, dest: Path) -> None:
    if not (dest.exists() or dest.is_symlink()):
        os.rename(partial, dest)
        return
    backup = dest.parent / f"{dest.name}.old-{secrets.token_hex(4)}"
    os.rename(dest, backup)
    try:
        os.rename(partial, dest)
    except BaseException:
        os.rename(backup, dest)
        raise
    if backup.is_symlink():
        backup.unlink()  # a link to a folder: remove the link only, never what it points to
    else:
        shutil.rmtree(backup)  # does not follow symlinks: linked source images are safe


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
