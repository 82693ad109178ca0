"""How fast the app feels on a 10,000-image project and a 50,000-point map.

A 10,000-image project (real PNG files, real scan, real thumbnails; synthetic embeddings in the real
embedding cache and a synthetic discovery result) driven through `AppTest`:
  * each of the five pages' plain rerun with nothing running, and while the map's UMAP runs in the
    background (the job a finished discovery starts),
  * the time of a curator edit, and the app's script runs it takes (Clusters page rename; gallery move;
    Map page move of a lasso selection),
  * a gallery page of 100 thumbnails, cold (thumbnails built) and warm,
and the map at 50,000 points: figure build + JSON serialisation, and (with `--browser`) the project's Map
page opened in headless Chromium, the map's render there plus a box selection coming back to Python.

    .venv/bin/python -m benchmarks app_speed [--images 10000] [--points 50000] [--parts pages edits figure]
        [--browser] [--out FILE]

`--parts edits` measures only the Clusters and Map pages' edits, selections and gallery pages. Prints a table
and writes benchmarks/results/app_speed.json (with a part left out: app_speed_<parts>.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, RESULTS, standin_discovery, timed, write_results
from turtle_ui.figures import DENSITY_ABOVE

OUT = RESULTS / "app_speed.json"
N_CLASSES = 10
PARTS = ("pages", "edits", "figure")


class ScriptRuns:
    """Counts the runs of the page scripts: each calls `session.through_app` first (under `AppTest` a page
    runs on its own, without app.py)."""

    def __init__(self) -> None:
        from turtle_ui import session

        self.count = 0
        original = session.through_app

        def counted() -> None:
            self.count += 1
            original()

        session.through_app = counted

    def of(self, action: Callable[[], object]) -> int:
        """The script runs `action` takes."""
        before = self.count
        action()
        return self.count - before


# ------------------------------------------------------------------------------------------ project


def write_images(folder: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    per_class = n // N_CLASSES
    for c in range(N_CLASSES):
        (folder / f"class_{c}").mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, 3)
        for i in range(per_class):
            pixels = np.clip(base + rng.integers(-40, 40, (48, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"class_{c}" / f"img_{i:05d}.png", compress_level=1)


def synthetic_project(folder: Path):
    """Open `folder` with the real `Project`, scan it, and give it a synthetic discovery."""
    from turtle_core.embedding.cache import EmbeddingCache
    from turtle_core.operations.project import Project
    from turtle_core.paths import embedding_cache_dir

    project = Project.open(folder)
    scan_s = timed(project.scan).seconds
    images = project.scan_result.images
    n = len(images)
    rng = np.random.default_rng(1)
    truth = np.array([int(r.label.split("_")[1]) for r in images])
    labels = np.where(rng.uniform(size=n) < 0.9, truth, rng.integers(0, N_CLASSES, n)).astype(np.int32)
    centres = rng.normal(size=(N_CLASSES, 64)) * 3
    vectors = (centres[labels] + rng.normal(size=(n, 64))).astype(np.float32)
    EmbeddingCache(embedding_cache_dir() / "synthetic").add([r.content_hash for r in images], vectors)
    confidence = rng.uniform(0.2, 1.0, n).astype(np.float32)
    discovery = standin_discovery(images, labels, confidence, N_CLASSES, "synthetic", score=0.9)
    project.state.install_discovery(discovery)  # saved with a fresh curation, as a real discovery is
    return project, scan_s


def app_for(project, page: str):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from turtle_ui import session

    st.cache_resource.clear()
    session._open_project_uncached = lambda folder: project
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.session_state["folder"] = str(project.folder)
    at.session_state["map_layout"] = "PCA"  # UMAP of 10k points takes a minute on 2 cores: not the UI's cost
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def bench_clusters(project, results: dict, runs: ScriptRuns) -> None:
    at = app_for(project, "pages/clusters.py")
    results["clusters_page_first_run_s"] = timed(lambda: at.run()).seconds

    counter = iter(range(1000))

    def rename() -> None:
        nonce = at.session_state["edit_nonce"]
        at.text_input(key=f"rename_name:{nonce}").set_value(f"name {next(counter)}")
        at.button(key="rename").click().run()
        assert not at.exception, at.exception

    renames = timed(rename, repeat=5)
    results["edit_rerun_clusters_overview_s"] = renames.seconds
    results["edit_rerun_clusters_overview_all_s"] = renames.runs
    results["edit_script_runs_rename"] = runs.of(rename)

    # Gallery of 100 thumbnails: cold (thumbnails made now) then warm (files exist, browser-side cache aside).
    at.segmented_control(key="clusters_view").set_value("Gallery").run()
    at.selectbox(key="gallery_page_size").set_value(100).run()
    scope = f"cluster{at.selectbox(key='gallery_cluster').value}"

    def page_to(number: int) -> None:
        at.number_input(key=f"page:{scope}").set_value(number).run()
        assert not at.exception, at.exception
        assert len([c for c in at.checkbox if c.key and c.key.startswith("pick:")]) == 100

    results["gallery_100_cold_s"] = timed(lambda: page_to(2)).seconds
    results["gallery_100_warm_s"] = timed(lambda: (page_to(1), page_to(2)), repeat=3).seconds / 2  # two flips

    def tick() -> None:
        boxes = [c for c in at.checkbox if c.key and c.key.startswith("pick:")]
        boxes[0].check().run()
        assert not at.exception, at.exception

    def move() -> None:
        at.button(key=f"{scope}:move").click().run()
        assert not at.exception, at.exception

    ticks, moves = [], []
    for _ in range(3):
        ticks.append(timed(tick).seconds)
        moves.append(timed(move).seconds)
    results["gallery_tick_rerun_s"] = statistics.median(ticks)
    results["edit_rerun_gallery_move_s"] = statistics.median(moves)
    tick()
    results["edit_script_runs_gallery_move"] = runs.of(move)


def bench_map(project, results: dict, runs: ScriptRuns) -> None:
    at = app_for(project, "pages/map.py")
    results["map_page_10k_rerun_s"] = timed(lambda: at.run(), repeat=3).seconds

    def lasso() -> None:
        key = at.get("plotly_chart")[0].key  # the chart's selection state, as the browser reports a lasso
        chosen = list(range(0, 2000, 7))
        boxes = []
        if len(project.scan_result.images) > DENSITY_ABOVE:  # a density map: a box holds what is inside
            xy = project.layout("pca")
            (x0, y0), (x1, y1) = np.quantile(xy, 0.49, axis=0), np.quantile(xy, 0.51, axis=0)
            boxes, chosen = [{"x": [float(x0), float(x1)], "y": [float(y0), float(y1)]}], []
        at.session_state[key] = {
            "selection": {"points": [], "point_indices": chosen, "box": boxes, "lasso": []}
        }
        at.run()
        assert not at.exception, at.exception

    def move() -> None:
        at.button(key="map:move").click().run()
        assert not at.exception, at.exception

    lassos, moves = [], []
    for _ in range(3):
        lassos.append(timed(lasso).seconds)
        moves.append(timed(move).seconds)
    results["map_selection_rerun_s"] = statistics.median(lassos)
    results["edit_rerun_map_move_s"] = statistics.median(moves)
    lasso()
    results["edit_script_runs_map_move"] = runs.of(move)


# ------------------------------------------------------------------------------------------ every page


PAGES = ("project", "discover", "clusters", "map", "export")


def bench_pages(project, results: dict) -> None:
    """Each page's plain rerun (median of 5) while the map's UMAP of every image runs in the background
    (the Discover page starts it once a discovery is there), then again once it has finished."""
    from turtle_ui import jobs as jobs_ui

    apps = {page: app_for(project, f"pages/{page}.py") for page in PAGES if page != "discover"}
    apps["discover"] = app_for(project, "pages/discover.py")  # last: `app_for` forgets earlier jobs
    umap = jobs_ui.project_job(project, "umap")
    assert umap is not None and umap.running, "the Discover page did not start the map's UMAP"

    def rerun(at) -> None:
        at.run()
        assert not at.exception, at.exception

    def each_page() -> dict[str, float]:
        return {page: timed(lambda at=at: rerun(at), repeat=5).seconds for page, at in apps.items()}

    results["page_rerun_during_umap_s"] = each_page()
    results["umap_still_running_after"] = umap.running
    started = time.perf_counter()
    umap.wait()
    results["umap_left_s"] = time.perf_counter() - started
    results["page_rerun_s"] = each_page()


# ------------------------------------------------------------------------------------------ 50k map


def bench_figure(n: int, results: dict) -> None:
    from turtle_ui.figures import scatter_figure

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    assign = rng.integers(0, 30, n).astype(np.int32)
    conf = rng.uniform(size=n).astype(np.float32)
    names = {c: f"cluster {c}" for c in range(30)}
    files = [f"folder/img_{i:06d}.jpg" for i in range(n)]
    build = timed(lambda: scatter_figure(xy, assign, conf, names, files), repeat=3).seconds
    fig = scatter_figure(xy, assign, conf, names, files)
    serialise = timed(fig.to_json, repeat=3).seconds
    results[f"map_{n}_figure_build_s"] = build
    results[f"map_{n}_serialise_s"] = serialise
    results[f"map_{n}_json_mb"] = len(fig.to_json()) / 1e6


MAP_APP = """
import numpy as np
import streamlit as st
from turtle_ui.figures import scatter_figure

st.set_page_config(layout="wide")
n = {n}
rng = np.random.default_rng(0)
xy = rng.normal(size=(n, 2)).astype(np.float32)
assign = rng.integers(0, 30, n).astype(np.int32)
fig = scatter_figure(xy, assign, rng.uniform(size=n).astype(np.float32), {{}}, [f"img_{{i}}.jpg" for i in range(n)])
fig.update_layout(dragmode="select")
event = st.plotly_chart(fig, key="umap", on_select="rerun", selection_mode=("box", "lasso"))
st.markdown(f"selected: {{len(event['selection']['point_indices'])}}")
"""


def bench_browser(n: int, results: dict) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, IDLE, AppServer

    with tempfile.TemporaryDirectory() as tmp:
        script = REPO / f".bench_map_{os.getpid()}.py"  # next to app.py so `pages` imports
        script.write_text(MAP_APP.format(n=n))
        server = AppServer(Path(tmp), script=script)
        try:
            server.wait_healthy()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                started = time.perf_counter()
                page.goto(server.url)
                page.wait_for_selector(
                    ".js-plotly-plot .gl-container canvas, .js-plotly-plot canvas", timeout=120_000
                )
                page.wait_for_selector(IDLE, timeout=120_000)
                page.get_by_text("selected: 0").wait_for(timeout=120_000)
                results[f"map_{n}_browser_render_s"] = time.perf_counter() - started
                box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
                x0, y0 = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45
                x1, y1 = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.55
                started = time.perf_counter()
                page.mouse.move(x0, y0)
                page.mouse.down()
                for step in range(1, 11):
                    page.mouse.move(x0 + (x1 - x0) * step / 10, y0 + (y1 - y0) * step / 10)
                page.mouse.up()
                page.wait_for_function(
                    "() => /selected: [1-9]/.test(document.body.innerText)", timeout=120_000
                )
                page.wait_for_selector(IDLE, timeout=120_000)
                results[f"map_{n}_browser_box_select_s"] = time.perf_counter() - started
                text = page.get_by_text("selected:").inner_text()
                results[f"map_{n}_browser_box_selected_points"] = int(text.split(":")[1])
                browser.close()
        finally:
            server.stop()
            script.unlink(missing_ok=True)


def bench_map_page_browser(folder: Path, results: dict) -> None:
    """The project's real Map page in headless Chromium (`streamlit run app.py`): the project opened from
    its URL, then the Map clicked in the sidebar until the map is drawn and the page idle (the layout is
    on disk by then; above `DENSITY_ABOVE` points a density view), then the page reloaded."""
    from urllib.parse import quote

    from playwright.sync_api import sync_playwright

    from benchmarks._app_server import CHROMIUM, CHROMIUM_ARGS, IDLE, AppServer

    def drawn(page, started: float) -> float:
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
        page.wait_for_selector(IDLE, timeout=180_000)
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        server = AppServer(Path(tmp), env={"TURTLE_HOME": os.environ["TURTLE_HOME"]})
        try:
            server.wait_healthy()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                started = time.perf_counter()
                page.goto(f"{server.url}/?folder={quote(str(folder))}")
                page.get_by_text("Usable images").wait_for(timeout=180_000)
                page.wait_for_selector(IDLE, timeout=180_000)
                results["project_page_opened_browser_s"] = time.perf_counter() - started
                started = time.perf_counter()
                page.locator("[data-testid='stSidebarNav']").get_by_text("Map", exact=True).click()
                results["map_page_first_view_browser_s"] = drawn(page, started)
                started = time.perf_counter()
                page.reload()
                results["map_page_reload_browser_s"] = drawn(page, started)
                browser.close()
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--browser",
        action="store_true",
        help="also open the project's Map page, and render the --points map, in headless Chromium",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    parts = [part for part in PARTS if part in args.parts]
    out = args.out or (OUT if parts == list(PARTS) else RESULTS / f"app_speed_{'_'.join(parts)}.json")

    results: dict[str, object] = {"images": args.images, "points": args.points, "parts": parts}
    if {"pages", "edits"} & set(parts) or args.browser:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["TURTLE_HOME"] = str(Path(tmp) / "home")
            os.environ.setdefault("TURTLE_OFFLINE", "1")
            folder = Path(tmp) / "images"
            results["write_images_s"] = timed(lambda: write_images(folder, args.images)).seconds
            project, results["scan_s"] = synthetic_project(folder)
            runs = ScriptRuns()
            if "pages" in parts:
                bench_pages(project, results)
            if "edits" in parts:
                bench_clusters(project, results, runs)
                bench_map(project, results, runs)
            if args.browser:
                bench_map_page_browser(folder, results)
    if "figure" in parts:
        bench_figure(args.points, results)
    if args.browser:
        bench_browser(args.points, results)

    write_results(out, results)
    width = max(len(k) for k in results)
    for key, value in results.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        if isinstance(value, dict):
            shown = "  ".join(f"{k} {v:.3f}" for k, v in value.items())
        print(f"{key:<{width}}  {shown}")
    print(f"\nwritten to {out.resolve()}")
