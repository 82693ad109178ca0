"""A project of a million images' features without image files: how the engine and the map hold up.

N images' features (default 1,000,000 × 1,280), no image file:

    nice -n 10 .venv/bin/python -m benchmarks million --n 100000
    nice -n 10 .venv/bin/python -m benchmarks million --n 1000000 --phases build,open,discover,map,gallery,edit

Features are drawn from a Gaussian mixture with known classes and stored through the real
embedding cache (`EmbeddingCache.add`, under made-up content hashes); the project's folder is empty.
Each phase runs in its own process, so its peak memory (`ru_maxrss`) is its own:
  build     generate the features and write them to the cache; an empty project folder
  standin   instead of discover, when it does not fit the time: the mixture's classes saved as
            the discovery, so that the phases after it can be measured (marked in the JSON)
  discover  read the features back from the cache, the quick discovery through the product's path
            (`pipeline.discover_features`: above 50,000 rows fitted on a 50,000-row sample, every row
            assigned and scored in chunks; confidence; the k-means reference), save the result and
            the curation (what `Project.run_discovery` does after scan and embedding)
  open      `Project.open` with that discovery and curation saved
  map       the map's first view: the features read from the cache (timed apart), the PCA layout
            (fitted on 50,000 sampled rows, every row projected in chunks), the density grid and the
            figure of the sample; then the same view again (layout cached)
  umap      the UMAP layout (fit on 50,000 sampled rows, `transform` for the rest; slow on 2 cores)
  gallery   one cluster's gallery page: its members sorted by confidence, 50 per page
  edit      an edit's rerun: move 1,000 images to a new cluster, save the curation atomically,
            rebuild the map figure (the density grid, kept per layout by the page, is not rebuilt)
  refine    "Propagate my fixes": confirm 2,000 images spread over the folder, the proposal (probe on
            every checked image, every unchecked one scored) and applying it (the state keeps both)
  save_after_refine  an edit's save once the undo history holds that propagation (five renames)
  update    a rescan's work after the embedding: 10,000 new images labelled with the curated
            categories, scored, and the carried curation saved; the review queue's new images
Writes benchmarks/results/million-n<N>.json (merging phases run separately).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, RESULTS, standin_discovery, write_results

IDENTITY = "synthetic-mixture"
CHUNK = 50_000
PHASES = ["build", "discover", "open", "map", "gallery", "edit", "refine"]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def hashes(n: int) -> list[str]:
    return [f"{i:040x}" for i in range(n)]


def truth_of(n: int, classes: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, classes, size=n)


def build(work: Path, n: int, dim: int, classes: int) -> dict:
    from turtle_core.embedding.cache import EmbeddingCache
    from turtle_core.paths import embedding_cache_dir

    rng = np.random.default_rng(0)
    centres = mixture_centres(rng, classes, dim)
    truth = truth_of(n, classes)
    keys = hashes(n)
    cache = EmbeddingCache(embedding_cache_dir() / IDENTITY)
    start = time.perf_counter()
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        block = centres[truth[lo:hi]] + rng.normal(size=(hi - lo, dim)).astype(np.float32)
        cache.add(keys[lo:hi], np.maximum(block, 0))  # non-negative, like pooled CNN features
    cache.compact()
    (work / "images").mkdir(parents=True, exist_ok=True)
    return {"seconds": time.perf_counter() - start, "cache_bytes": _size(embedding_cache_dir() / IDENTITY)}


def mixture_centres(rng: np.random.Generator, classes: int, dim: int) -> np.ndarray:
    """Classes in a random 32-dimensional subspace plus isotropic noise: separable, not trivially."""
    return (rng.normal(size=(classes, 32)) @ rng.normal(size=(32, dim)) / 32**0.5 * 1.2).astype(np.float32)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _records(n: int, classes: int) -> list:
    from turtle_core.ingest.scan import ImageRecord

    truth = truth_of(n, classes)
    return [
        ImageRecord(f"class{c:03d}/{i:07d}.jpg", 50_000, 0, key, 640, 480, f"class{c:03d}")
        for i, (c, key) in enumerate(zip(truth.tolist(), hashes(n), strict=True))
    ]


def discover(work: Path, n: int, classes: int) -> dict:
    """The product's discovery on the cached features: `pipeline.discover_features` (what
    `Project.run_discovery` runs after scan and embedding: selection, every image assigned, confidence,
    the k-means reference against the folder labels), then the result and curation saved."""
    from turtle_core.discovery.effort import EFFORTS
    from turtle_core.discovery.metrics import evaluate
    from turtle_core.embedding.cache import EmbeddingCache
    from turtle_core.operations.pipeline import discover_features
    from turtle_core.operations.project import Project
    from turtle_core.paths import embedding_cache_dir

    start = time.perf_counter()
    records = _records(n, classes)
    found, features = EmbeddingCache(embedding_cache_dir() / IDENTITY).lookup(
        [r.content_hash for r in records]
    )
    assert found.all()
    read_s = time.perf_counter() - start
    stages: dict[str, float] = {}
    patched = []

    def timed(module, name: str, stage: str) -> None:  # time the discovery's steps where they are looked up
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            begun = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                stages[stage] = round(stages.get(stage, 0.0) + time.perf_counter() - begun, 2)

        setattr(module, name, wrapper)
        patched.append((module, name, original))

    from turtle_core.discovery import confidence, metrics, sampled, selection, stability

    timed(selection, "select_model", "select_model")  # every selection of `discover` (three, quick)
    timed(stability, "choose_partition", "stability_choice")  # its k-means runs
    timed(sampled, "predict_proba_chunked", "assign_every_row")
    timed(sampled, "confidence_and_atypicality_sampled", "confidence")
    timed(confidence, "confidence_and_atypicality", "confidence")
    timed(sampled, "kmeans_baseline_sampled", "kmeans_reference")
    if n <= sampled.SAMPLE_ROWS:  # all rows; above, the TURTLE starts call it too (inside select_model)
        timed(metrics, "kmeans_baseline", "kmeans_reference")
    try:
        result = discover_features(
            records, [features], [IDENTITY], classes, EFFORTS["quick"], backbones=["synthetic"]
        )
    finally:
        for module, name, original in patched:
            setattr(module, name, original)
    labels = result.labels
    seconds = time.perf_counter() - start
    print(json.dumps({"stages_s": stages, "seconds": seconds}), file=sys.stderr, flush=True)
    Project.open(work / "images").state.install_discovery(result)  # discovery and its fresh curation
    quality = evaluate(truth_of(n, classes), labels)
    return {
        "seconds": seconds,
        "read_features_s": read_s,
        "discover_s": result.seconds,
        "stages_s": stages,
        "fit_sample": result.params.get("fit_sample"),
        "save_s": time.perf_counter() - start - seconds,
        "kmeans_reference": result.kmeans_metrics,
        "confidence_finite": bool(np.isfinite(result.confidence).all()),
        "every_row_labelled": bool((labels >= 0).all() and labels.size == n),
        **quality,
    }


def standin(work: Path, n: int, classes: int) -> dict:
    """Instead of `discover` when a discovery at this size does not fit the time: the mixture's own
    classes saved as the discovery (confidence drawn at random), so that the phases after it (open,
    map, gallery, edit) can be measured. The JSON marks it."""
    from turtle_core.operations.project import Project

    start = time.perf_counter()
    labels = truth_of(n, classes).astype(np.int32)
    confidence = np.random.default_rng(2).uniform(0.3, 1.0, size=n).astype(np.float32)
    project = Project.open(work / "images")
    params = {"effort": "stand-in: the mixture's classes, no discovery ran"}
    result = standin_discovery(_records(n, classes), labels, confidence, classes, IDENTITY, params=params)
    project.state.install_discovery(result)
    return {
        "seconds": time.perf_counter() - start,
        "labels": "the mixture's classes (stand-in, not a discovery)",
    }


def open_project(work: Path) -> dict:
    from turtle_core.operations.project import Project

    start = time.perf_counter()
    project = Project.open(work / "images")
    assert project.discovery is not None and project.curation is not None
    return {"seconds": time.perf_counter() - start, "images": len(project.images)}


def _figure(project, xy: np.ndarray, grid=None) -> tuple[int, float]:
    """The map page's figure; `grid` given: the density grid the page keeps per layout in its session."""
    from turtle_core.maps.layouts import density_sample
    from turtle_ui import figures

    start = time.perf_counter()
    n = len(xy)
    sample = density_sample(n, figures.DENSITY_SAMPLE)
    grid = figures.density_grid(xy) if grid is None else grid
    curation = project.curation
    fig = figures.density_figure(
        grid,
        xy[sample],
        curation.assignments[sample],
        np.asarray(project.discovery.confidence)[sample],
        {cid: curation.name_of(cid) for cid in curation.cluster_ids()},
        [project.images[i].path.rsplit("/", 1)[-1] for i in sample],
    )
    payload = len(fig.to_json())
    return payload, time.perf_counter() - start


def map_view(work: Path) -> dict:
    import plotly.graph_objects  # noqa: F401 - the app has it loaded already

    from turtle_core.operations.project import Project

    project = Project.open(work / "images")
    for old in project.store.layouts_dir.glob("layout-pca-*.npy"):  # a first view: no layout saved yet
        old.unlink()
    start = time.perf_counter()
    project.spaces()  # reading the features back from the embedding cache (I/O), timed on its own
    read_s = time.perf_counter() - start
    xy = project.layout("pca")
    layout_s = time.perf_counter() - start - read_s
    payload, figure_s = _figure(project, xy)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = project.cached_layout("pca")
    assert again is not None
    _, figure_again_s = _figure(project, again)
    return {
        "first_view_s": first,
        "read_features_s": read_s,
        "layout_s": layout_s,
        "figure_s": figure_s,
        "figure_json_bytes": payload,
        "cached_view_s": time.perf_counter() - start,
        "cached_figure_s": figure_again_s,
    }


def umap_view(work: Path) -> dict:
    from turtle_core.operations.project import Project

    project = Project.open(work / "images")
    start = time.perf_counter()
    xy = project.layout("umap")
    return {"seconds": time.perf_counter() - start, "rows": len(xy)}


def gallery(work: Path) -> dict:
    from turtle_core.operations.project import Project

    project = Project.open(work / "images")
    curation = project.curation
    confidence = np.asarray(project.discovery.confidence)
    biggest = max(curation.sizes().items(), key=lambda item: item[1])[0]
    start = time.perf_counter()
    members = curation.members(biggest)
    order = members[np.argsort(confidence[members], kind="stable")]
    page = [project.images[i].path for i in order[:50]]
    return {"seconds": time.perf_counter() - start, "cluster_size": len(members), "page": len(page)}


def edit(work: Path) -> dict:
    """What the map page does when the curator moves 1,000 images to a new cluster: the edit through
    `Project.apply` (lock, check, edit, atomic save), then the rerun's snapshot and map figure."""
    import plotly.graph_objects  # noqa: F401 - the app has it loaded already

    from turtle_core.operations.project import Project
    from turtle_core.state.edits import MoveToNewCluster
    from turtle_ui import figures

    project = Project.open(work / "images")
    xy = project.cached_layout("pca")
    grid = figures.density_grid(xy) if xy is not None else None  # the page keeps it per layout
    snap = project.snapshot()
    start = time.perf_counter()
    chosen = np.arange(0, len(snap.images), max(1, len(snap.images) // 1_000))[:1_000]
    project.apply(
        MoveToNewCluster(discovery_id=snap.discovery_id, images=snap.keys(chosen), name="benchmark picks")
    )
    saved = time.perf_counter() - start
    project.snapshot()  # the rerun's own copy of the curation
    snapshot_s = time.perf_counter() - start - saved
    payload = figure_s = None
    if xy is not None:
        payload, figure_s = _figure(project, xy, grid)
    return {
        "seconds": time.perf_counter() - start,
        "edit_and_save_s": saved,
        "snapshot_s": snapshot_s,
        "figure_s": figure_s,
        "figure_json_bytes": payload,
        "figure_rebuilt": xy is not None,
    }


def refine(work: Path) -> dict:
    """Propagate my fixes: the curator confirms 2,000 images spread over the folder, then the proposal
    (a probe trained on every checked image, every unchecked image re-labelled and scored) and applying
    it as one undoable edit."""
    from turtle_core.operations.project import Project
    from turtle_core.state.edits import Confirm

    project = Project.open(work / "images")
    snap = project.snapshot()
    chosen = np.arange(0, len(snap.images), max(1, len(snap.images) // 2_000))[:2_000]
    project.apply(Confirm(discovery_id=snap.discovery_id, images=snap.keys(chosen)))
    start = time.perf_counter()
    proposal = project.propose_refine()
    propose_s = time.perf_counter() - start
    project.apply(proposal.edit())
    return {
        "seconds": time.perf_counter() - start,
        "propose_s": propose_s,
        "apply_s": time.perf_counter() - start - propose_s,
        "checked": proposal.n_checked,
        "unchecked": proposal.n_unchecked,
        "changed": proposal.n_changed,
    }


def save_after_refine(work: Path) -> dict:
    """An edit's save once the undo history holds a propagation (a review confidence per image): a rename,
    whose own diff is tiny, rewrites the whole curation file with that history (run after `refine`)."""
    from turtle_core.operations.project import Project
    from turtle_core.state.edits import Rename

    project = Project.open(work / "images")
    snap = project.snapshot()
    times = []
    for round_ in range(5):
        start = time.perf_counter()
        project.apply(
            Rename(
                discovery_id=snap.discovery_id,
                cluster_id=snap.curation.cluster_ids()[0],
                name=f"named {round_}",
            )
        )
        times.append(time.perf_counter() - start)
    curation = project.snapshot().curation
    return {
        "seconds": float(np.median(times)),
        "edit_save_s": [round(t, 3) for t in times],
        "history_bytes": curation.history_nbytes(),
        "history_steps": len(curation.history()),
        "curation_file_bytes": (project.store.curation_path).stat().st_size,
    }


def update(work: Path, n_new: int = 10_000) -> dict:
    """A rescan's work after the embedding: `n_new` images join (their features added to the cache, as the
    embedding would have), every one labelled with the curated categories and scored, the discovery's next
    revision and the carried curation saved; then the review queue's new images."""
    from turtle_core.embedding.cache import EmbeddingCache
    from turtle_core.ingest.scan import ImageRecord
    from turtle_core.operations.project import Project
    from turtle_core.operations.update import prepare_update
    from turtle_core.paths import embedding_cache_dir
    from turtle_core.state.rebase import map_rows

    project = Project.open(work / "images")
    snap = project.snapshot()
    n, classes = len(snap.images), int(np.asarray(snap.discovery.labels).max()) + 1
    dim = int(project.spaces(snap.discovery)[0].shape[1])
    rng = np.random.default_rng(0)
    centres = mixture_centres(rng, classes, dim)
    new_rng = np.random.default_rng(7)
    truth = new_rng.integers(0, classes, n_new)
    keys = [f"new{i:037x}" for i in range(n_new)]
    features = np.maximum(centres[truth] + new_rng.normal(size=(n_new, dim)).astype(np.float32), 0)
    EmbeddingCache(embedding_cache_dir() / IDENTITY).add(keys, features)
    added = [
        ImageRecord(f"new/class{c:03d}/{i:06d}.jpg", 50_000, 0, key, 640, 480, "new")
        for i, (c, key) in enumerate(zip(truth.tolist(), keys, strict=True))
    ]
    start = time.perf_counter()
    rows = map_rows(snap.images, list(snap.images) + added)
    old_spaces = project.spaces(snap.discovery)
    spaces_s = time.perf_counter() - start
    update, report = prepare_update(snap, rows, added, old_spaces, [features], [])
    computed_s = time.perf_counter() - start
    project.state.install_update(update)
    after = project.snapshot()
    new_rows = np.flatnonzero(after.new)
    cluster_truth = {}
    for cid in after.curation.cluster_ids():  # each curated cluster's majority class among the old images
        members = snap.curation.members(cid)
        if members.size:
            cluster_truth[cid] = int(np.bincount(truth_of(n, classes)[members]).argmax())
    given = after.curation.assignments[n:]
    right = np.asarray([cluster_truth.get(int(c), -1) for c in given]) == truth
    return {
        "seconds": time.perf_counter() - start,
        "features_read_s": spaces_s,
        "label_and_score_s": computed_s - spaces_s,
        "install_s": time.perf_counter() - start - computed_s,
        "added": report.n_added,
        "labelled": report.n_labelled,
        "new_images_accuracy": float(right.mean()),
        "review_queue_new_first": bool(np.array_equal(new_rows, np.arange(n, n + n_new))),
    }


def run_phase(args: argparse.Namespace) -> None:
    work = Path(args.work)
    os.environ["TURTLE_HOME"] = str(work / "home")
    out = {
        "build": lambda: build(work, args.n, args.dim, args.classes),
        "discover": lambda: discover(work, args.n, args.classes),
        "standin": lambda: standin(work, args.n, args.classes),
        "open": lambda: open_project(work),
        "map": lambda: map_view(work),
        "umap": lambda: umap_view(work),
        "gallery": lambda: gallery(work),
        "edit": lambda: edit(work),
        "refine": lambda: refine(work),
        "save_after_refine": lambda: save_after_refine(work),
        "update": lambda: update(work),
    }[args.phase]()
    out["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--work", default=None, help="working folder (default: /tmp/million-n<N>)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.work = args.work or f"/tmp/million-n{args.n}"
    if args.phase:
        run_phase(args)
        return
    path = RESULTS / f"million-n{args.n}.json"
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        payload = {}
    payload.update({"n": args.n, "dim": args.dim, "classes": args.classes})
    phases = payload.setdefault("phases", {})
    for phase in args.phases.split(","):
        command = [sys.executable, "-m", "benchmarks", "million", "--phase", phase, "--n", str(args.n)]
        command += ["--dim", str(args.dim), "--classes", str(args.classes), "--work", args.work]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            phases[phase] = {"failed": done.stderr.strip().splitlines()[-1:]}
        else:
            phases[phase] = json.loads(done.stdout.strip().splitlines()[-1])
        phases[phase]["process_s"] = time.perf_counter() - started
        phases[phase]["load_average"] = os.getloadavg()[0]
        print(phase, json.dumps(phases[phase]), flush=True)
        write_results(path, payload)
