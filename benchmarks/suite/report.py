"""Aggregate the suite's per-seed runs (mean, min, max) and print them as tables."""

from __future__ import annotations

import math
from typing import Any

# Per-run fields aggregated over seeds; effort fields come from the curator's `Effort.to_dict()`.
START_FIELDS = ("accuracy", "nmi", "ari", "seconds", "auroc")
EFFORT_FIELDS = ("actions_per_100", "inspected_per_100", "accuracy_after_naming", "rounds", "final_accuracy")


def _stats(values: list[float]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return {"mean": None, "min": None, "max": None}
    return {"mean": sum(finite) / len(finite), "min": min(finite), "max": max(finite)}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean / min / max over a method's seeds of every start field and every effort field."""
    summary: dict[str, Any] = {field: _stats([run[field] for run in runs]) for field in START_FIELDS}
    for mode in ("no_feedback", "feedback"):
        present = [run[mode] for run in runs if run.get(mode)]
        summary[mode] = (
            {field: _stats([effort[field] for effort in present]) for field in EFFORT_FIELDS}
            if present
            else None
        )
    if any(run.get("feedback_note") for run in runs):
        summary["feedback_note"] = next(run["feedback_note"] for run in runs if run.get("feedback_note"))
    if any(run.get("refine_seconds") is not None for run in runs):
        summary["refine_seconds"] = _stats([run.get("refine_seconds") for run in runs])
    return summary


def _fmt(stats: dict[str, float | None] | None, digits: int = 3, low: str = "min") -> str:
    if not stats or stats["mean"] is None:
        return "—"
    return f"{stats['mean']:.{digits}f} ({stats[low]:.{digits}f})"


def table_rows(set_name: str, methods: dict[str, Any]) -> list[str]:
    """Markdown rows for one set: discovery quality (mean (min)), seconds, AUROC, curator effort
    (mean (worst) actions per 100 images without and with feedback)."""
    rows = []
    for method, summary in methods.items():
        no_fb, fb = summary["no_feedback"], summary["feedback"]
        feedback = (
            f"{_fmt(fb['actions_per_100'], 1, 'max')} / {fb['rounds']['mean']:.1f}"
            if fb
            else summary.get("feedback_note", "")
        )
        rows.append(
            f"| {set_name} | {method} | {_fmt(summary['accuracy'])} | {_fmt(summary['nmi'])} | "
            f"{_fmt(summary['ari'])} | {summary['seconds']['mean']:.1f} | {_fmt(summary['auroc'], 2)} | "
            f"{_fmt(no_fb['actions_per_100'], 1, 'max')} | {_fmt(no_fb['inspected_per_100'], 1, 'max')} | "
            f"{no_fb['accuracy_after_naming']['mean']:.3f} | {feedback} |"
        )
    return rows


TABLE_HEADER = (
    "| set | method | accuracy mean (min) | NMI mean (min) | ARI mean (min) | s | AUROC mean (min) | "
    "actions/100 no feedback mean (max) | inspected/100 mean (max) | acc. after naming | "
    "actions/100 with feedback mean (max) / rounds |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def print_table(results: dict[str, Any]) -> None:
    print(TABLE_HEADER)
    for set_name, entry in results.items():
        for row in table_rows(set_name, entry["methods"]):
            print(row)
