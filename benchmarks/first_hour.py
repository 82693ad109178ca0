"""A new user's first hour on the demo: demo-to-result and the first map, old settings against new, side by side.

    .venv/bin/python -m benchmarks first_hour                          # every part
    .venv/bin/python -m benchmarks first_hour --parts embed,umap --features-dir DIR

Parts (results merge into `results/first_hour.json`, with the load average, since the machine is shared):
- `embed`: Lite0 images/s on the demo's PNGs, the old model layout (NCHW) against channels-last, in
  alternating rounds over the same images (no cache), so both see the same load.
- `discover`: the demo's 2,000 images, TURTLE with the quick and the standard effort: accuracy and seconds.
- `umap`: the first UMAP layout of the demo in a fresh process (import + numba compilation + fit), the
  old settings against the new, each run twice alternately.
- `end_to_end`: the real engine from an empty `$TURTLE_HOME`: write the demo folder, open, scan, embed,
  discover with the effort the demo's first run uses; seconds per stage.
- `browser` (not in the default parts): `streamlit run app.py` and headless Chromium as a new user: Try the
  demo, Discover, Run discovery with the page's defaults, until "Result"; then `end_to_end`; the ratio, and
  the time the page expected before Run against the time Run took.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import FEATURES, REPO, RESULTS, load_average, write_results

OUT = RESULTS / "first_hour.json"
OLD_UMAP = {"random_state": 42, "pca_dims": 50}
# The candidate: UMAP's own epoch count above 10k points.
NEW_UMAP = {"random_state": 42, "pca_dims": 50, "n_epochs": 200}


def part_embed(rounds: int, per_round: int) -> dict[str, object]:
    import torch

    from turtle_core.embedding.backbones import load_backbone
    from turtle_core.embedding.embed import embed_images
    from turtle_core.ingest.demo import write_demo_folder
    from turtle_core.ingest.scan import scan_folder

    folder = write_demo_folder(per_class=200)
    records = scan_folder(folder).images
    new = load_backbone("effnet-lite0", device="cpu")
    old_model = load_backbone("effnet-lite0", device="cpu").model.to(memory_format=torch.contiguous_format)
    old = dataclasses.replace(new, model=old_model, channels_last=False)
    rates: dict[str, list[float]] = {"old (NCHW)": [], "new (channels-last)": []}
    same = None
    for r in range(rounds):
        chunk = records[r * per_round : (r + 1) * per_round]
        for name, backbone in (("old (NCHW)", old), ("new (channels-last)", new)):
            started = time.perf_counter()
            result = embed_images(folder, chunk, backbone, cache=None)
            rates[name].append(round(result.computed / (time.perf_counter() - started), 2))
            if name.startswith("old"):
                reference = result.vectors
            else:
                same = float(np.abs(result.vectors - reference).max())
        print("embed round", r, {k: v[-1] for k, v in rates.items()}, flush=True)
    mean = {k: round(float(np.mean(v)), 2) for k, v in rates.items()}
    return {
        "images_per_round": per_round,
        "images_per_s": rates,
        "images_per_s_mean": mean,
        "speed_up": round(mean["new (channels-last)"] / mean["old (NCHW)"], 2),
        "max_abs_feature_difference": same,
        "torch_threads": torch.get_num_threads(),
        "load_average_after": load_average(),
    }


def part_discover(features_dir: Path, seeds: list[int], efforts: list[str]) -> dict[str, object]:
    from turtle_core.discovery.effort import EFFORTS
    from turtle_core.discovery.metrics import evaluate
    from turtle_core.discovery.selection import select_model

    X = np.load(features_dir / "animal_mnist_effnet-lite0.npy")
    y = np.load(features_dir / "animal_mnist_labels.npy")
    out: dict[str, object] = {"n_images": int(len(y))}
    for effort in efforts:
        runs = []
        for seed in seeds:
            started = time.perf_counter()
            best = select_model([X], 10, random_state=seed, **EFFORTS[effort].select_kwargs()).best
            seconds = time.perf_counter() - started
            metrics = evaluate(y, np.asarray(best.labels_))
            runs.append(
                {"seed": seed, "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in metrics.items()}}
            )
            print("discover", effort, runs[-1], flush=True)
        out[effort] = {
            "runs": runs,
            "accuracy_mean": round(float(np.mean([r["accuracy"] for r in runs])), 4),
            "seconds_mean": round(float(np.mean([r["seconds"] for r in runs])), 1),
            "load_average_after": load_average(),
        }
    return out


_UMAP_CHILD = """
import json, sys, time, warnings
started = time.perf_counter()
import numpy as np
from turtle_core.maps.layouts import concat_spaces, umap_layout
X = concat_spaces([np.load(sys.argv[1])])
params = json.loads(sys.argv[2])
layout = umap_layout(X, **params)
seconds = time.perf_counter() - started
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
y = np.load(sys.argv[3])
knn = cross_val_score(KNeighborsClassifier(10), layout, y, cv=5).mean()
print(json.dumps({"seconds": round(seconds, 1), "knn10_accuracy_2d": round(float(knn), 3)}))
"""


def part_umap(features_dir: Path, repeats: int) -> dict[str, object]:
    configs = {"old": OLD_UMAP, "new": NEW_UMAP}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, params in configs.items():
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _UMAP_CHILD,
                    str(features_dir / "animal_mnist_effnet-lite0.npy"),
                    json.dumps(params),
                    str(features_dir / "animal_mnist_labels.npy"),
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append({**json.loads(done.stdout.strip().splitlines()[-1]), "load": load_average()[0]})
            print("umap", name, runs[name][-1], flush=True)
    mean = {name: round(float(np.mean([r["seconds"] for r in rs])), 1) for name, rs in runs.items()}
    return {
        "settings": configs,
        "runs": runs,
        "seconds_mean": mean,
        "ratio_old_over_new": round(mean["old"] / mean["new"], 2),
    }


def part_end_to_end(effort: str | None) -> dict[str, object]:
    from turtle_core.discovery.effort import DEMO_EFFORT
    from turtle_core.ingest.demo import write_demo_folder
    from turtle_core.operations.project import Project
    from turtle_core.progress import Progress

    effort = effort or DEMO_EFFORT
    home = tempfile.mkdtemp(prefix="first-hour-")
    os.environ["TURTLE_HOME"] = home  # an empty engine home: nothing cached, as for a new user
    stages: dict[str, float] = {}
    started = time.perf_counter()

    def progress(report: Progress) -> None:
        stages.setdefault(report.stage, time.perf_counter() - started)

    folder = write_demo_folder(per_class=200)
    stages["demo folder written"] = time.perf_counter() - started
    project = Project.open(folder)
    result = project.run_discovery(10, progress=progress, effort=effort)
    total = time.perf_counter() - started
    return {
        "effort": effort,
        "seconds_total": round(total, 1),
        "stage_started_at_s": {k: round(v, 1) for k, v in stages.items()},
        "accuracy": round(float((result.metrics or {}).get("accuracy", float("nan"))), 4),
        "load_average_after": load_average(),
    }


class _AppWatch:
    """What the page receives over Streamlit's websocket: the script runs (full or fragment) as they start,
    and the job panel's stage headings ("**Discovery** · Training TURTLE") with when each first appeared."""

    def __init__(self, page, t0: float) -> None:
        from turtle_ui.jobs import STAGE_LABELS

        self.t0 = t0
        self.stage_keys = {label: key for key, label in STAGE_LABELS.items()}
        self.runs: list[tuple[float, bool]] = []  # (seconds since t0, fragment run)
        self.stages: dict[str, float] = {}  # "Discovery: select" -> seconds since t0 when first shown
        self.last_caption: dict[str, str] = {}  # stage -> the panel's last rate · time left · elapsed line
        self._stage = ""
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            return
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = ForwardMsg()
        message.ParseFromString(payload)
        kind = message.WhichOneof("type")
        now = time.perf_counter() - self.t0
        if kind == "new_session":
            self.runs.append((now, bool(message.metadata.run.fragment_ids)))
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            element = message.delta.new_element
            if element.WhichOneof("type") != "markdown":
                return
            body = element.markdown.body
            head = re.match(r"^\*\*(\w+)\*\* · (.+)$", body)
            if head:
                self._stage = f"{head[1]}: {self.stage_keys.get(head[2], head[2])}"
                self.stages.setdefault(self._stage, round(now, 1))
            elif self._stage and "elapsed" in body:
                self.last_caption[self._stage] = body

    def runs_between(self, start: float, end: float) -> dict[str, int]:
        inside = [fragment for t, fragment in self.runs if start <= t <= end]
        return {"full": inside.count(False), "fragment": inside.count(True)}


def _browser_demo(timeout_s: float) -> dict[str, object]:
    """A new user in headless Chromium: open the app, Try the demo, the Discover page, Run discovery with
    the page's defaults, until the heading "Result"; seconds from the click on Try the demo."""
    from playwright.sync_api import expect, sync_playwright

    from benchmarks._app_server import CHROMIUM, CHROMIUM_ARGS, IDLE, AppServer

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM} (set TURTLE_CHROMIUM)")
    timeout_ms = timeout_s * 1000
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="first-hour-browser-") as tmp:
        server = AppServer(Path(tmp))
        try:
            server.wait_healthy()
            out["server_pid"] = server.process.pid
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                context.set_default_timeout(120_000)
                page = context.new_page()
                watch = _AppWatch(page, time.perf_counter())
                page.goto(server.url)
                demo = page.get_by_role("button", name="Try the demo")
                demo.wait_for()
                page.wait_for_selector(IDLE)
                out["load_average_before"] = load_average()

                clicked = time.perf_counter()
                demo.click()
                page.get_by_text("Usable images").wait_for(timeout=timeout_ms)
                scanned = time.perf_counter()
                page.wait_for_selector(IDLE)
                out["usable_images"] = page.locator("[data-testid='stMetricValue']").first.inner_text()

                page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Discover").click()
                page.get_by_role("heading", name="Discover categories").wait_for()
                run = page.get_by_role("button", name="Run discovery")
                expect(run).to_be_enabled()
                page.wait_for_selector(IDLE)
                checked = (
                    "[data-testid='stRadioGroup'][aria-label='{}'] "
                    "[data-testid='stRadioOption'][data-selected='true']"
                )
                out["page_defaults"] = {
                    "categories": page.get_by_label("Categories", exact=True).input_value(),
                    "effort": page.locator(checked.format("Effort")).inner_text(),
                    "partition": page.locator(checked.format("Partition")).inner_text(),
                }
                out["estimate_shown"] = page.get_by_text("Expected time:").first.inner_text()
                server_cpu = server.cpu_seconds()
                started = time.perf_counter()
                run.click()
                page.get_by_role("heading", name="Result").wait_for(timeout=timeout_ms)
                ended = time.perf_counter()
                server_cpu = server.cpu_seconds() - server_cpu
                out["load_average_after"] = load_average()
                browser.close()
        finally:
            server.stop()
    estimated = shown_seconds(str(out["estimate_shown"]))
    out.update(
        {
            "seconds_estimated_before_run": estimated,
            "estimate_error": round(estimated / (ended - started) - 1.0, 3),
            "seconds_total": round(ended - clicked, 1),
            "seconds_demo_written_and_scanned": round(scanned - clicked, 1),
            "seconds_to_discover_page_and_run": round(started - scanned, 1),
            "seconds_run_to_result": round(ended - started, 1),
            "stage_shown_at_s": {k: round(v - (clicked - watch.t0), 1) for k, v in watch.stages.items()},
            "last_progress_caption": watch.last_caption,
            "script_runs_during_discovery": watch.runs_between(started - watch.t0, ended - watch.t0),
            "server_cpu_s_during_discovery": round(server_cpu, 1),
        }
    )
    return out


def shown_seconds(text: str) -> float:
    """The first duration in a caption ("about 1 min 05 s (embedding …)", "about 45 s …"), in seconds."""
    found = re.search(r"(?:(\d+) h )?(?:(\d+) min)?(?: ?(\d+) s)?", text.split("about", 1)[-1].strip())
    if found is None or not any(found.groups()):
        raise ValueError(f"no duration in {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def part_browser(timeout_s: float) -> dict[str, object]:
    """The demo in Chromium, then the engine path (`end_to_end`) right after it, side by side."""
    os.environ.update({"TURTLE_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})  # the engine as offline as the app
    browser = _browser_demo(timeout_s)
    print("browser", json.dumps(browser), flush=True)
    load_before_engine = load_average()
    engine = part_end_to_end(None)
    engine["load_average_before"] = load_before_engine
    print("engine", json.dumps(engine), flush=True)
    ratio = round(browser["seconds_total"] / engine["seconds_total"], 2)
    print(
        f"\n{'':>8}  {'seconds':>8}  load before → after\n"
        f"{'browser':>8}  {browser['seconds_total']:8.1f}  {browser['load_average_before']} → "
        f"{browser['load_average_after']}\n"
        f"{'engine':>8}  {engine['seconds_total']:8.1f}  {engine['load_average_before']} → "
        f"{engine['load_average_after']}\n"
        f"browser / engine: {ratio} (target ≤ 1.2; browser ≤ 60 s)\n"
        f"expected before Run {browser['seconds_estimated_before_run']:.0f} s, Run to Result "
        f"{browser['seconds_run_to_result']:.1f} s ({browser['estimate_error']:+.0%}; target within ±30 %)\n",
        flush=True,
    )
    return {"browser": browser, "engine": engine, "ratio_browser_over_engine": ratio}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="embed,discover,umap,end_to_end")
    parser.add_argument("--features-dir", type=Path, default=FEATURES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=96)
    parser.add_argument("--seeds", default="0,100,200")
    parser.add_argument("--efforts", default="quick,standard")
    parser.add_argument("--umap-repeats", type=int, default=2)
    parser.add_argument("--effort", default=None, help="end_to_end: effort (default: the demo's)")
    parser.add_argument("--browser-timeout", type=float, default=900, help="browser: seconds per wait")
    args = parser.parse_args(argv)
    report: dict[str, dict[str, object]] = {}
    for part in args.parts.split(","):
        started = time.perf_counter()
        if part == "embed":
            report[part] = part_embed(args.rounds, args.per_round)
        elif part == "discover":
            seeds = [int(s) for s in args.seeds.split(",")]
            report[part] = part_discover(args.features_dir, seeds, args.efforts.split(","))
        elif part == "umap":
            report[part] = part_umap(args.features_dir, args.umap_repeats)
        elif part == "end_to_end":
            report[part] = part_end_to_end(args.effort)
        elif part == "browser":
            report[part] = part_browser(args.browser_timeout)
        else:
            raise SystemExit(f"unknown part {part!r}")
        report[part]["wall_s"] = round(time.perf_counter() - started, 1)
        report[part]["load_average_before_next"] = load_average()
        # Re-read before writing: parts may run in separate processes at once.
        merged = json.loads(OUT.read_text()) if OUT.exists() else {}
        merged[part] = report[part]
        write_results(OUT, merged)
        print(part, json.dumps(report[part]), flush=True)
