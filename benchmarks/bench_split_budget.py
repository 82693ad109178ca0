"""What a split spends: the quick effort (the split's default) against the standard one, side by side.

Time and quality of splitting a merged pair of demo classes with each effort, on the same rows.

    .venv/bin/python -m benchmarks bench_split_budget [--per-class 200] [--pairs 2]

Writes benchmarks/results/split_budget.json. Needs the demo's embeddings (computed and cached on first run).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.common import RESULTS, write_results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=2, help="merged pairs of classes to split")
    parser.add_argument("--efforts", default="quick,standard")
    parser.add_argument("--parts", default="auto,2", help="parts to ask for: 'auto' (2-4) and/or numbers")
    parser.add_argument("--out", default="split_budget.json", help="file name under benchmarks/results/")
    args = parser.parse_args(argv)

    from turtle_core.discovery.effort import resolve_effort
    from turtle_core.discovery.metrics import hungarian_accuracy
    from turtle_core.discovery.selection import select_model
    from turtle_core.ingest.demo import write_demo_folder
    from turtle_core.operations.project import Project
    from turtle_core.operations.split import split_request

    project = Project.open(write_demo_folder(per_class=args.per_class))
    project.scan()
    images, spaces, _, _ = project.embed()
    truth = np.array([record.path.split("/")[0] for record in images])
    classes = sorted(set(truth))
    rows = []
    for pair in range(args.pairs):
        chosen = classes[2 * pair : 2 * pair + 2]
        members = np.flatnonzero(np.isin(truth, chosen))
        for name, parts in [(e, p) for e in args.efforts.split(",") for p in args.parts.split(",")]:
            effort = resolve_effort(name)
            n_parts = None if parts == "auto" else int(parts)
            steps = []
            started = time.perf_counter()
            selection = select_model(
                [space[members] for space in spaces],
                split_request(len(members), n_parts),
                random_state=0,
                progress=lambda p, steps=steps: steps.append(p.total),
                **effort.select_kwargs(),
            )
            seconds = time.perf_counter() - started
            labels = selection.best.labels_
            row = {
                "classes": chosen,
                "rows": int(members.size),
                "effort": name,
                "parts_asked": parts,
                "seconds": round(seconds, 2),
                "outer_steps_counted": int(steps[-1]) if steps else None,
                "parts": int(selection.best_n_clusters),
                # Purity: the share of images in the majority class of their part (1.0: every part is one class).
                "purity": round(float(purity(truth[members], labels)), 4),
                "accuracy_vs_the_two_classes": round(
                    float(hungarian_accuracy(np.unique(truth[members], return_inverse=True)[1], labels)), 4
                ),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    by_effort = {
        name: round(float(np.mean([r["seconds"] for r in rows if r["effort"] == name])), 2)
        for name in args.efforts.split(",")
    }
    summary = {
        "demo_images": len(images),
        "runs": rows,
        "mean_seconds": by_effort,
    }
    if "quick" in by_effort and "standard" in by_effort:
        summary["quick_over_standard_time"] = round(by_effort["quick"] / by_effort["standard"], 3)
    write_results(RESULTS / args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


def purity(truth: np.ndarray, labels: np.ndarray) -> float:
    majority = sum(
        np.unique(truth[labels == part], return_counts=True)[1].max() for part in np.unique(labels)
    )
    return majority / truth.size
