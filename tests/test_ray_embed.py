"""Embedding on Ray: a real two-node Ray cluster on this machine (loopback only) against the local
path's vectors; per-image failures; a worker killed mid-run; the CLI and the Project page."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ray_cluster import LocalCluster, reload_ray_auth

from turtle_core.cli import main as cli
from turtle_core.embedding import ray_embed
from turtle_core.embedding.cache import EmbeddingCache
from turtle_core.embedding.embed import embed_folder_images
from turtle_core.ingest.scan import ImageRecord, hash_bytes, scan_folder
from turtle_core.paths import embedding_cache_dir
from turtle_core.progress import Progress

pytestmark = pytest.mark.ray
BACKBONE = "effnet-lite0"


def _write_noise_images(root: Path, count: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img_{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with pytest.MonkeyPatch.context() as patch:
        # Token authentication, as Ray's own default for local clusters, with a token of our own.
        patch.setenv("RAY_AUTH_MODE", "token")
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        patch.setenv("TURTLE_OFFLINE", "1")
        pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
        reload_ray_auth()
        local = LocalCluster()
        try:
            local.start()
            yield local
        finally:
            import ray

            ray.shutdown()
            local.stop()


# ------------------------------------------------------------------------------ on the cluster


def test_two_node_cluster_matches_local_path(cluster: LocalCluster, tmp_path: Path) -> None:
    """200 images, half already in the cache: only the rest goes to Ray; one worker is killed
    mid-run and Ray retries its batches; damaged files fail with their reasons; the vectors equal
    the local path's and land in the same cache, where the next run finds all of them."""
    root = _write_noise_images(tmp_path / "images", 200)
    records = scan_folder(root).images
    assert len(records) == 200
    reference = embed_folder_images(root, records, BACKBONE, device="cpu", cache_root=tmp_path / "ref")
    identity = reference.identity
    cache = EmbeddingCache(embedding_cache_dir() / identity)
    cache.add([r.content_hash for r in records[:100]], reference.vectors[:100])

    truncated, deleted = root / records[150].path, root / records[160].path
    truncated.write_bytes(truncated.read_bytes()[:60])  # damaged after the scan
    deleted.unlink()
    junk = b"not an image at all"
    (root / "junk.png").write_bytes(junk)
    records = [*records, ImageRecord("junk.png", len(junk), 0, hash_bytes(junk), 1, 1, None)]

    killed: list[int] = []

    def kill_one_worker(progress: Progress) -> None:
        if progress.done > 0 and not killed:
            pids = cluster.actor_pids("MapWorker")
            assert pids, "no Ray Data actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    result = ray_embed.embed_folder_images_ray(
        root, records, BACKBONE, address=cluster.address, batch_size=8, progress=kill_one_worker
    )

    assert killed, "the run finished before a worker could be killed"
    assert result.identity == identity
    assert result.from_cache == 100 and result.computed == 98
    assert {f.path: f.reason for f in result.failed} == {
        records[150].path: "file changed since the scan (rescan the folder)",
        records[160].path: "file no longer exists (rescan the folder)",
        "junk.png": "not an image (format not recognised)",
    }
    good = np.array([i not in (150, 160) for i in range(200)])
    np.testing.assert_array_equal(result.ok, np.append(good, False))
    np.testing.assert_allclose(result.vectors, reference.vectors[good], rtol=1e-4, atol=1e-5)
    found, rows = EmbeddingCache(embedding_cache_dir() / identity).lookup([r.content_hash for r in records])
    np.testing.assert_array_equal(found, result.ok)  # failures are not cached
    np.testing.assert_allclose(rows, reference.vectors[good], rtol=1e-4, atol=1e-5)

    # Everything usable is cached now: a rerun never contacts Ray (this address has no cluster).
    usable = [r for r, ok in zip(records, result.ok, strict=True) if ok]
    again = ray_embed.embed_folder_images_ray(root, usable, BACKBONE, address="127.0.0.1:9")
    assert again.computed == 0 and again.from_cache == 198
    np.testing.assert_array_equal(again.vectors, result.vectors)


def test_cli_embed_on_the_cluster_reports_counts_and_skips(
    cluster: LocalCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _write_noise_images(tmp_path / "images", 12, seed=1)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)

    assert cli.main(["embed", str(root), "--ray", cluster.address, "--quiet"]) == 0

    out, err = capsys.readouterr()
    assert "effnet-lite0: 12 of 12 images embedded (0 from the cache, 12 computed on Ray, 0 failed)" in out
    assert "skipped: broken.png: not an image" in err
    assert cli.main(["embed", str(root), "--quiet"]) == 0  # the local path finds the Ray run's vectors
    assert "(12 from the cache, 0 computed, 0 failed)" in capsys.readouterr().out


# ------------------------------------------------------------------------------ without a cluster


@pytest.mark.parametrize("command", ["embed", "discover"])
def test_ray_flag_without_ray_says_how_to_install(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ray_embed, "ray_installed", lambda: False)
    args = [command, str(tmp_path), "--ray", "local"]
    if command == "discover":
        args += ["-k", "3", "-o", str(tmp_path / "labels.csv")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "Ray is not installed" in err and "pip install -r requirements-ray.txt" in err


def test_import_error_becomes_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ray_embed.RayUnavailable, match="requirements-ray.txt"):
        ray_embed.embed_folder_images_ray(".", [], BACKBONE, address="local")


def test_nothing_to_embed_needs_no_cluster() -> None:
    pytest.importorskip("ray")
    result = ray_embed.embed_folder_images_ray(".", [], BACKBONE, address="127.0.0.1:9")
    assert result.vectors.shape[0] == 0 and result.computed == 0 and not result.failed


def test_discover_hands_the_address_to_the_ray_path(
    make_image_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring from `discover --ray` to the Ray embedding (the cluster itself is tested above)."""
    calls: list[str] = []

    def on_this_machine(root, records, name, checkpoint=None, *, address, **kwargs):
        calls.append(address)
        kwargs = {k: v for k, v in kwargs.items() if k in ("device", "cache_root", "progress", "cancel")}
        return embed_folder_images(root, records, name, checkpoint, **kwargs)

    monkeypatch.setattr(ray_embed, "ray_installed", lambda: True)
    monkeypatch.setattr(ray_embed, "embed_folder_images_ray", on_this_machine)
    root = make_image_tree({"a": 5, "b": 5})
    out = tmp_path / "labels.csv"
    args = ["discover", str(root), "-k", "2", "-o", str(out), "--effort", "quick", "-q"]
    assert cli.main([*args, "--ray", "10.0.0.7:6379"]) == 0
    assert calls == ["10.0.0.7:6379"]
    assert len(out.read_text().splitlines()) == 11


def test_project_page_offers_a_cluster_address_only_with_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_app_fakes import FakeProject, open_app

    project = FakeProject(tmp_path / "images")
    monkeypatch.setattr(ray_embed, "ray_installed", lambda: True)
    at = open_app(monkeypatch, project)
    field = at.text_input(key=f"ray-address:{project.folder}")
    assert field.label == "Ray cluster address"
    field.set_value(" 10.0.0.7:6379 ").run()
    assert not at.exception
    choices = at.session_state[f"run_choices:{project.folder}"]  # this visitor's, not the shared project's
    assert choices.ray_address == "10.0.0.7:6379" and project.ray_address is None
    at.text_input(key=f"ray-address:{project.folder}").set_value("").run()
    assert at.session_state[f"run_choices:{project.folder}"].ray_address is None

    monkeypatch.setattr(ray_embed, "ray_installed", lambda: False)
    at = open_app(monkeypatch, project)
    assert not at.exception
    assert "Ray cluster address" not in [widget.label for widget in at.text_input]
