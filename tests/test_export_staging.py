"""Where an export is staged, how a re-export keeps its folder, and what a killed export leaves (nothing
for good): `turtle_core/export/staging.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from turtle_core.export import staging as stage
from turtle_core.export.dataset import ExportError, export_dataset
from turtle_core.export.marker import MARKER, check_replaceable
from turtle_core.paths import resolve_roots


@pytest.fixture
def source(make_image_tree) -> tuple[Path, dict]:
    root = make_image_tree({"cats": 3, "dogs": 2})
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    labels = [p.split("/")[0] for p in paths]
    columns = {
        "paths": paths,
        "labels": labels,
        "cluster_ids": [0 if label == "cats" else 1 for label in labels],
        "confidence": [0.9] * len(paths),
        "checked": [False] * len(paths),
    }
    return root, columns


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_re_export_keeps_the_folder_itself(source, tmp_path: Path) -> None:
    root, columns = source
    dest = tmp_path / "out"
    export_dataset(root, dest=dest, **columns)
    inode = dest.stat().st_ino
    shell = os.open(dest, os.O_RDONLY)  # a shell or file browser sitting in the folder
    try:
        relabelled = dict(columns, labels=["birds"] * len(columns["paths"]))
        export_dataset(root, dest=dest, overwrite=True, **relabelled)
        assert dest.stat().st_ino == inode
        assert sorted(os.listdir(shell)) == sorted([MARKER, "birds", *_manifests(dest)])
    finally:
        os.close(shell)
    marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    assert "complete" not in marker and set(marker["entries"]) == set(_listing(dest)) - {MARKER}
    assert _listing(tmp_path) == ["images", "out"]  # no staging or backup left beside it
    # An empty folder made beforehand (the user is already in it) is kept too.
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    export_dataset(root, dest=empty, **columns)
    assert empty.stat().st_ino == inode and (empty / "cats").is_dir()


def _manifests(dest: Path) -> list[str]:
    return [name for name in _listing(dest) if name not in (MARKER, "birds", "cats", "dogs")]


def _parent_during_export(root: Path, dest: Path, columns: dict, within, **flags) -> list[list[str]]:
    seen: list[list[str]] = []
    export_dataset(
        root,
        dest=dest,
        within=within,
        progress=lambda _: seen.append(_listing(dest.parent)),
        **columns,
        **flags,
    )
    return seen


def test_staging_stays_beside_the_folder_only_where_that_is_allowed(source, tmp_path: Path) -> None:
    root, columns = source
    exports = tmp_path / "exports"  # the allowed folder; its parent is not allowed
    exports.mkdir()
    before = _listing(tmp_path)
    seen = _parent_during_export(root, exports, columns, resolve_roots([exports]))
    assert seen and all(listing == before for listing in seen)  # nothing ever appeared beside it
    assert (exports / "cats").is_dir() and _listing(tmp_path) == before
    # Re-exported, it still writes nothing outside it, and it keeps its inode.
    inode = exports.stat().st_ino
    seen = _parent_during_export(root, exports, columns, resolve_roots([exports]), overwrite=True)
    assert all(listing == before for listing in seen) and exports.stat().st_ino == inode
    # Where the parent is allowed, the export is staged beside the folder and renamed into place.
    dest = exports / "labeled"
    seen = _parent_during_export(root, dest, columns, resolve_roots([exports]))
    assert any(any(name.startswith("labeled.partial-") for name in listing) for listing in seen)
    assert "labeled" in _listing(exports) and not any(".partial-" in n for n in _listing(exports))
    with pytest.raises(ExportError, match="outside the folders"):
        export_dataset(root, dest=tmp_path / "elsewhere", within=resolve_roots([exports]), **columns)
    assert not (tmp_path / "elsewhere").exists()


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_leftovers_of_a_killed_export_are_cleaned_but_a_live_one_is_kept(source, tmp_path: Path) -> None:
    root, columns = source
    dest = tmp_path / "out"
    export_dataset(root, dest=dest, **columns)
    dead_beside = tmp_path / "out.partial-deadbeef"
    (dead_beside / "cats").mkdir(parents=True)
    (dead_beside / "cats" / "x.png").write_bytes(b"half")
    old_version_backup = tmp_path / "out.old-0badc0de"
    old_version_backup.mkdir()
    (old_version_backup / MARKER).write_text(json.dumps({"exported_by": "turtle-labels"}))
    (dest / ".turtle-old-12345678" / "dogs").mkdir(parents=True)
    (dest / ".turtle-partial-abcdef12").mkdir()
    (dest / ".turtle-export.json.k9x_2ab3.tmp").write_text("{")
    users = tmp_path / "out.partial-mine"  # not our pattern: the user's own folder
    users.mkdir()
    live = tmp_path / "out.partial-0123abcd"  # an export still running in another process
    live.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert check_replaceable(dest).replaceable  # leftovers do not count as files the user added
        report = export_dataset(root, dest=dest, overwrite=True, **columns)
        assert any("interrupted earlier export" in w for w in report.warnings)
        assert _listing(tmp_path) == ["images", "out", "out.partial-0123abcd", "out.partial-mine"]
        assert [name for name in _listing(dest) if name.startswith(".")] == [MARKER]
    finally:
        holder.kill()
        holder.wait()
    export_dataset(root, dest=dest, overwrite=True, **columns)  # its exporter is gone now: cleaned
    assert _listing(tmp_path) == ["images", "out", "out.partial-mine"]


def test_a_swap_broken_off_at_any_step_leaves_a_folder_the_next_export_replaces(
    source, tmp_path: Path, monkeypatch
) -> None:
    root, columns = source
    dest = tmp_path / "out"
    export_dataset(root, dest=dest, **columns)
    renamed = dict(columns, labels=["birds"] * len(columns["paths"]))
    real_rename = os.rename
    step = 0
    while True:
        calls = {"n": 0}

        def failing(src, dst, *, _limit=step, calls=calls):
            if calls["n"] >= _limit:
                raise KeyboardInterrupt  # stands for a kill at this rename
            calls["n"] += 1
            return real_rename(src, dst)

        monkeypatch.setattr(stage.os, "rename", failing)
        try:
            export_dataset(root, dest=dest, overwrite=True, **renamed)
            finished = True
        except KeyboardInterrupt:
            finished = False
        monkeypatch.setattr(stage.os, "rename", real_rename)
        assert check_replaceable(dest).replaceable, step
        export_dataset(root, dest=dest, overwrite=True, **columns)
        assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["cats", "dogs"], step
        assert _listing(tmp_path) == ["images", "out"], step
        if finished:
            break
        step += 1
    assert step >= 3  # the swap has several steps, and every one was broken off once
