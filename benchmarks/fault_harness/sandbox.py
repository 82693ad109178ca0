"""A real project in a folder of its own, restored byte for byte before every run of a fault.

    <root>/images/    the user's image folder (one link in it points into outside/)
    <root>/outside/   files beside it that nothing may ever touch
    <root>/exports/   the export's parent; exports/labeled is the export
    <root>/home/      TURTLE_HOME: the workspace, the embedding cache, thumbnails

The project is made once by a worker (`worker.py setup`: scan, discovery, a map, thumbnails, the curator's
first edits, an export) and copied aside; `restore` puts that copy back at the same path, so the
workspace (keyed by the folder's path) is found again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from benchmarks.fault_harness.hostile import write_hostile_tree

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("red", "green", "blue")
PER_CLASS = 10


@dataclass(frozen=True)
class Sandbox:
    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def dest(self) -> Path:
        return self.exports / "labeled"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def pristine(self) -> Path:
        return self.root.with_name(self.root.name + ".pristine")

    @property
    def baseline_path(self) -> Path:
        return self.root.with_name(self.root.name + ".baseline.json")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TURTLE_HOME": str(self.home),
            "TURTLE_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO),
        }

    def baseline(self) -> dict[str, Any]:
        return json.loads(self.baseline_path.read_text())

    def workspace(self) -> Path:
        return next((self.home / "projects").iterdir())


def write_images(folder: Path, hostile: bool = False) -> None:
    """Three colour classes of small distinct images (and, with `hostile`, the hostile names' tree)."""
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            image = Image.new("RGB", (48, 48), (90 * c % 256, 90, 220 - 80 * c))
            ImageDraw.Draw(image).rectangle((i * 3, 2, i * 3 + 6, 22), fill=(255, i * 20, 0))
            image.save(folder / name / f"{name}_{i:02d}.png")
    if hostile:
        write_hostile_tree(folder / "hostile")


def build(root: Path, *, hostile: bool = False, discovery: str = "real") -> Sandbox:
    """Make the sandbox's project and keep a pristine copy of it. `discovery`: "real" (TURTLE, quick
    effort) or "folders" (the image folders as clusters: no training, for quick checks)."""
    sandbox = Sandbox(root)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(sandbox.pristine, ignore_errors=True)
    write_images(sandbox.images, hostile)
    sandbox.outside.mkdir(parents=True)
    (sandbox.outside / "notes.txt").write_text("a file beside the project that nothing may touch\n")
    linked = sandbox.outside / "linked.png"
    Image.new("RGB", (48, 48), (10, 200, 10)).save(linked)
    (sandbox.images / "green" / "link.png").symlink_to(linked)
    sandbox.exports.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.fault_harness.worker",
            "setup",
            json.dumps(spec_for(sandbox, discovery=discovery)),
        ],
        cwd=REPO,
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the sandbox failed:\n{done.stderr[-4000:]}")
    sandbox.baseline_path.write_text(done.stdout.strip().splitlines()[-1])
    shutil.copytree(root, sandbox.pristine, symlinks=True)
    return sandbox


def spec_for(sandbox: Sandbox, **extra: Any) -> dict[str, Any]:
    return {"folder": str(sandbox.images), "dest": str(sandbox.dest), **extra}


def restore(sandbox: Sandbox) -> None:
    """Put the pristine project back at the same path (the workspace is keyed by it)."""
    shutil.rmtree(sandbox.root, ignore_errors=True)
    shutil.copytree(sandbox.pristine, sandbox.root, symlinks=True)


# ------------------------------------------------------------------ what changed outside
def tree_state(root: Path, skip: Iterable[Path] = ()) -> dict[str, tuple[Any, ...]]:
    """Every entry under `root` (links not followed) → (kind, size, mtime, content digest of files)."""
    skipped = {os.fspath(path) for path in skip}
    state: dict[str, tuple[Any, ...]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skipped]
        for name in dirs + files:
            path = os.path.join(folder, name)
            if path in skipped:
                continue
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                state[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif os.path.isdir(path):
                state[rel] = ("dir",)
            else:
                with open(path, "rb") as handle:
                    digest = hashlib.blake2b(handle.read(), digest_size=16).hexdigest()
                state[rel] = ("file", st.st_size, st.st_mtime_ns, digest)
    return state


def outside_state(sandbox: Sandbox) -> dict[str, tuple[Any, ...]]:
    """What must never change: everything in the sandbox but the engine's home and the export."""
    return tree_state(sandbox.root, skip=[sandbox.home, sandbox.dest])


def touched(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> list[str]:
    """Paths added, removed or changed between two `tree_state`s."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


# ------------------------------------------------------------------ damaging files
def damageable_files(sandbox: Sandbox) -> list[tuple[str, Path]]:
    """(what it is, path) for every workspace and cache file a fault can damage."""
    work = sandbox.workspace()
    found = [(f"workspace/{p.relative_to(work)}", p) for p in sorted(work.rglob("*")) if p.is_file()]
    found = [(name, p) for name, p in found if p.name != ".lock"]
    for path in sorted((sandbox.home / "embeddings").rglob("*")):
        if path.is_file() and path.name != ".lock":
            found.append((f"cache/{path.parent.name[:12]}/{path.name[:6]}*{path.suffix}", path))
    thumbs = sorted((sandbox.home / "thumbnails").rglob("*.*"))
    found += [("thumbnail", p) for p in thumbs[:2]]
    recent = sandbox.home / "recent.json"
    if recent.is_file():
        found.append(("recent.json", recent))
    return found


def damage(path: Path, how: str) -> None:
    """`truncate`: cut the file to half; `corrupt`: flip 64 bytes in its middle (all of a small file)."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        middle = max(0, len(data) // 2 - 32)
        for i in range(middle, min(len(data), middle + 64)):
            data[i] ^= 0xFF
    else:
        raise ValueError(how)
    path.write_bytes(bytes(data))
