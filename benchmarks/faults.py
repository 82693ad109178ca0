"""The fault campaign: kill -9 at random points of every long step, damaged workspace and cache files, a
full disk during a save, two app processes and the CLI on one project, hostile file names. For each
fault kind: runs, projects that reopened, edits lost, files touched outside the engine's home and the
export, crashes shown to the user.

    .venv/bin/python benchmarks/faults.py                      # JSON: benchmarks/results/faults.json
    .venv/bin/python benchmarks/faults.py --runs 2 --kinds edits,export,concurrent

Every run restores a real project (scan, discovery, map, thumbnails, four curator edits, an export; made
once by `fault_harness/worker.py setup`), injects one fault, then opens the project as the next user
would: the state, every page of the real app (Streamlit's AppTest), one export.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.common import RESULTS
from benchmarks.fault_harness import kinds as fk
from benchmarks.fault_harness.sandbox import build

KILLED = {"edits", "discover", "split", "refine", "export", "rescan"}
ALL_KINDS = (*fk.KILLED_STEPS, "truncate", "corrupt", "diskfull", "concurrent", "hostile")
COLUMNS = ("fault kind", "runs", "reopened", "edits lost", "touched outside", "crashes shown")


def campaign(work: Path, kinds: list[str], runs: int, seed: int) -> list[fk.RunOutcome]:
    rng = random.Random(seed)
    plain = build(work / "project")
    outcomes: list[fk.RunOutcome] = []
    durations: dict[str, float] = {}
    for kind in kinds:
        started = time.monotonic()
        if kind in KILLED:
            durations[kind] = fk.calibrate(plain, kind)
            outcomes += [fk.kill_run(plain, kind, durations[kind], rng) for _ in range(runs)]
        elif kind in ("truncate", "corrupt"):
            outcomes += list(fk.damage_runs(plain, kind))
        elif kind == "diskfull":
            outcomes += [fk.disk_full_run(plain, rng) for _ in range(runs)]
        elif kind == "concurrent":
            outcomes += [fk.concurrent_run(plain, rng) for _ in range(runs)]
        elif kind == "hostile":
            hostile = build(work / "hostile", hostile=True)
            for op in ("edits", "export"):
                duration = fk.calibrate(hostile, op)
                for _ in range(runs):
                    outcome = fk.kill_run(hostile, op, duration, rng)
                    outcome.kind = f"hostile names: {outcome.kind}"
                    outcomes.append(outcome)
        print(f"  {kind}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return outcomes


def table(outcomes: list[fk.RunOutcome]) -> list[dict[str, object]]:
    grouped: dict[str, list[fk.RunOutcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[outcome.kind].append(outcome)
    return [
        {
            "fault kind": kind,
            "runs": len(group),
            "reopened": sum(o.reopened for o in group),
            "edits lost": sum(o.edits_lost for o in group),
            "touched outside": sum(len(o.touched) for o in group),
            "crashes shown": sum(len(o.crashes) for o in group),
        }
        for kind, group in grouped.items()
    ]


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="runs of each kill, disk-full and concurrency fault"
    )
    parser.add_argument(
        "--kinds", default=",".join(ALL_KINDS), help=f"comma separated: {', '.join(ALL_KINDS)}"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.json")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    load_before = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as work:
        outcomes = campaign(Path(work), kinds, args.runs, args.seed)
    for outcome in outcomes:  # messages quote the sandbox's temporary path: not worth keeping
        outcome.notices = [text.replace(work, "<sandbox>") for text in outcome.notices]
        outcome.crashes = [text.replace(work, "<sandbox>") for text in outcome.crashes]
    rows = table(outcomes)
    print(markdown(rows))
    report = {
        "benchmark": "faults",
        "runs_per_kind": args.runs,
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "table": rows,
        "goals": {
            "edits lost": "at most the one in flight (acknowledged edits: none)",
            "touched outside": "none",
            "crashes shown": "none",
        },
        "runs": [outcome.as_dict() for outcome in outcomes],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
