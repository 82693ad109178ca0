"""The manifests and metadata files of an export: CSV, Parquet, Hugging Face and Label Studio."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

from turtle_core.export.naming import valid_unicode
from turtle_core.names import display_name, escape_name

MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "exported_path",
    "label",
    "cluster_id",
    "confidence",
    "checked",
    "excluded",
)
MANIFEST_CSV = "manifest.csv"
MANIFEST_PARQUET = "manifest.parquet"
HF_METADATA = "metadata.jsonl"
HF_README = "README.md"
LS_TASKS = "labelstudio_tasks.json"
LS_CONFIG = "labelstudio_config.xml"
# Hugging Face guesses train/validation/test splits from these words in folder and file names.
_HF_SPLIT_WORD = re.compile(
    r"(?:^|[-._ 0-9])(?:train|training|validation|valid|dev|val|test|testing|eval|evaluation)(?:[-._ 0-9]|$)"
)


class ExportError(ValueError):
    """The export cannot be done as asked (bad destination, bad inputs)."""


def manifest_frame(
    paths: Sequence[str],
    labels: Sequence[str | None],
    cluster_ids: Sequence[int],
    confidence: Sequence[float],
    checked: Sequence[bool],
    exported_paths: Sequence[str] | None = None,
    quality: Mapping[str, Sequence[int]] | None = None,
) -> pd.DataFrame:
    """One row per image: path (source, relative), exported_path (relative to the export, or ""),
    label (None if excluded), cluster_id, confidence, checked, excluded, then one 0/1 column per
    image-quality flag in `quality` (flag name → one value per image)."""
    n = check_lengths(paths, labels, cluster_ids, confidence, checked)
    exported = [""] * n if exported_paths is None else list(exported_paths)
    if len(exported) != n:
        raise ExportError(f"exported_paths has {len(exported)} entries for {n} images")
    flags = dict(quality or {})
    if any(len(values) != n for values in flags.values()):
        raise ExportError(f"every quality flag needs one value per image ({n})")
    label_list = [None if label is None else valid_unicode(str(label)) for label in labels]
    frame = pd.DataFrame(
        {
            "path": pd.array([escape_name(str(p)) for p in paths], dtype="string"),
            "exported_path": pd.array(exported, dtype="string"),
            "label": pd.array(label_list, dtype="string"),
            "cluster_id": np.asarray(cluster_ids, dtype=np.int64).reshape(n),
            "confidence": np.asarray(confidence, dtype=np.float64).reshape(n),
            "checked": np.asarray(checked, dtype=bool).reshape(n),
            "excluded": np.array([label is None for label in labels], dtype=bool).reshape(n),
        },
        columns=list(MANIFEST_COLUMNS),
    )
    for flag, values in flags.items():
        frame[flag] = np.asarray(values, dtype=np.int8).reshape(n)
    return frame


def quality_columns(frame: pd.DataFrame) -> list[str]:
    """The manifest's image-quality flag columns (those after the fixed columns)."""
    return [column for column in frame.columns if column not in MANIFEST_COLUMNS]


def manifest_csv_bytes(
    paths: Sequence[str],
    labels: Sequence[str | None],
    cluster_ids: Sequence[int],
    confidence: Sequence[float],
    checked: Sequence[bool],
    exported_paths: Sequence[str] | None = None,
    quality: Mapping[str, Sequence[int]] | None = None,
) -> bytes:
    """The manifest as UTF-8 CSV (for a download button)."""
    frame = manifest_frame(paths, labels, cluster_ids, confidence, checked, exported_paths, quality)
    return frame.to_csv(index=False).encode("utf-8")


def check_lengths(*columns: Sequence) -> int:
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ExportError(
            "paths, labels, cluster_ids, confidence and checked must have one entry per image, got lengths "
            + ", ".join(str(len(c)) for c in columns)
        )
    return lengths.pop()


def write_metadata(
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
    flags = quality_columns(rows)
    with open(out / HF_METADATA, "w", encoding="utf-8") as handle:
        for rec in rows.itertuples(index=False):
            line = {
                "file_name": rec.exported_path,
                "label": rec.label,
                "cluster_id": int(rec.cluster_id),
                "confidence": _json_float(rec.confidence),
                "checked": bool(rec.checked),
                "source_path": rec.path,
            }
            line.update({flag: int(getattr(rec, flag)) for flag in flags})
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
    flags = quality_columns(rows)
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
        data = {"image": url, "source_path": rec.path}
        if flags:
            data["quality_flags"] = ", ".join(flag for flag in flags if getattr(rec, flag))
        tasks.append({"data": data, "predictions": [prediction]})
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
