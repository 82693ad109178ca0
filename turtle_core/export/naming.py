"""Folder and file names for an export that are safe on Linux, macOS and Windows."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Collection, Sequence

from turtle_core.names import is_hidden_char

MAX_NAME_BYTES = 100
_FORBIDDEN = frozenset('<>:"/\\|?*')
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789\u00b9\u00b2\u00b3"]
    + ["CONIN$", "CONOUT$"]
)


def sanitize_label(name: str) -> str:
    """A folder name safe on Linux, macOS and Windows that stays close to `name` (Unicode kept)."""
    text = unicodedata.normalize("NFC", valid_unicode(str(name)))
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
    text = truncate_utf8(text, MAX_NAME_BYTES).rstrip(" .")
    if not text:
        return "unnamed"
    stem, dot, rest = text.partition(".")
    if stem.rstrip(" ").upper() in _WINDOWS_RESERVED:
        text = truncate_utf8(stem.rstrip(" ") + "_" + dot + rest, MAX_NAME_BYTES).rstrip(" .")
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
            candidate = truncate_utf8(base, MAX_NAME_BYTES - len(suffix)).rstrip(" .") + suffix
            k += 1
        taken.add(candidate.casefold())
        folders[name] = candidate
    return folders


def safe_file_name(name: str) -> str:
    text = unicodedata.normalize("NFC", valid_unicode(name))
    text = "".join("_" if ch in _FORBIDDEN or is_hidden_char(ch) else ch for ch in text)
    text = text.strip(" ").rstrip(".")
    if text.startswith("."):
        text = "_" + text[1:]
    stem, ext = os.path.splitext(text)
    if stem.upper() in _WINDOWS_RESERVED or stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem += "_"
    ext = ext if len(ext.encode("utf-8")) <= 16 else ""
    stem = truncate_utf8(stem, 150 - len(ext.encode("utf-8"))) or "image"
    return stem + ext


def valid_unicode(text: str) -> str:
    """Undo `surrogateescape` (non-UTF-8 bytes in file names) by replacing those bytes with '_'."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\ufffd", "_")


def truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")
