"""The prepared GPU check (`python -m benchmarks gpu_check`) skips cleanly and says so on a machine without CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GPU_CHECK = [sys.executable, "-m", "benchmarks", "gpu_check"]


def test_gpu_check_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the full check by hand: python -m benchmarks gpu_check")
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [*GPU_CHECK, "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "skipped: no CUDA device" in done.stdout
    report = json.loads(out.read_text())
    assert report["skipped"] is True and report["torch"] == torch.__version__


def test_gpu_check_steps_run_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    """Every part of the check (graph/eager, bf16, two threads, embedding; the scale, ImageNet-size and
    pairing parts) on tiny CPU problems, so the check that only a GPU machine runs in full is known to
    work before it gets there."""
    out = tmp_path / "gpu_check.json"
    args = ["--device", "cpu", "--n", "600", "--dims", "16,24", "--clusters", "3", "--steps", "60"]
    scale = ["--turtle-steps", "60", "--scale-n", "600", "--scale-dims", "16,24"]
    imagenet = ["--imagenet-n", "900", "--imagenet-dims", "16,32", "--imagenet-clusters", "6"]
    embedding = ["--embed-images", "10", "--pairings", "offline"]
    done = subprocess.run(
        [*GPU_CHECK, *args, *scale, *imagenet, *embedding, "--images", "12", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["problems"] == []
    assert report["graph_vs_eager"]["label_agreement"] == 1.0
    assert [fit["accuracy"] for fit in report["two_threads"]["fits"]] == [1.0, 1.0]
    assert report["embedding"]["embedded"] == 12 and report["embedding"]["all_finite"]
    assert report["scale"]["outer_steps"] == 60 and report["scale"]["accuracy"] == 1.0
    assert report["imagenet"]["n"] == 900 and report["imagenet"]["accuracy"] >= 0.9
    assert set(report["imagenet"]["phases"]) >= {"kmeans_start", "train", "soft_labels"}
    lite0 = report["pairings"]["offline"]["backbones"]["effnet-lite0"]
    assert lite0["product"]["embedded"] == lite0["all_cores"]["embedded"] == 10
    assert report["pairings"]["offline"]["pairing_images_per_s"]["product"] > 0
    preparation = report["pairings"]["preparation_only"]
    assert any(key.startswith("processes_") for key in preparation) and min(preparation.values()) > 0
