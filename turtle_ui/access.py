"""Which folders the app may open when people other than its owner can reach it.

On this machine only (the default: Streamlit bound to localhost) every folder may be opened. Served
to others (`--server.address 0.0.0.0`), anyone who reaches the page could type any path of this
machine, so folders must be listed: `TURTLE_ALLOWED_FOLDERS=/data/a:/data/b` (the `os.pathsep`
separated list of folders that may be opened, with everything inside them). Paths are resolved with
symlinks followed, so a link inside an allowed folder that points outside it is refused. The demo
folders (under `$TURTLE_HOME/demo`) always stay allowed. Served without a list, only the demo opens.

Whenever folders are limited, so is the rest of what a visitor could make the server do: checkpoints
(`local-dir:` folders too) load only from inside the allowed folders, and the server connects only to
the Ray clusters listed in `TURTLE_ALLOWED_RAY_ADDRESSES` (comma separated; `local` allows starting Ray
on this machine), none when it is unset. `read_roots` is what the UI passes to the engine, so the scan,
the galleries and exports never follow a link out of the allowed folders.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from turtle_core.names import display_name
from turtle_core.paths import turtle_home

ALLOWED_FOLDERS_ENV = "TURTLE_ALLOWED_FOLDERS"
ALLOWED_RAY_ENV = "TURTLE_ALLOWED_RAY_ADDRESSES"
LOCAL_DIR_PREFIX = "local-dir:"  # a checkpoint given as a folder (open_clip's local-dir: form)
LOCAL_HOSTNAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class FolderNotAllowed(ValueError):
    """The folder is outside the folders this app may open; the message says what to do."""


@dataclass(frozen=True)
class FolderPolicy:
    """`allowed`: the folders (resolved) that may be opened, with their contents; None: any folder.
    `ray_addresses`: the Ray clusters the server may connect to; None: any."""

    allowed: tuple[Path, ...] | None
    explanation: str = ""
    ray_addresses: tuple[str, ...] | None = None

    @property
    def read_roots(self) -> tuple[Path, ...] | None:
        """What the engine may read (`within=` of the scan, thumbnails, previews and exports)."""
        return self.allowed

    def permits_checkpoint(self, checkpoint: str) -> bool:
        """Whether a checkpoint file, or a `local-dir:` folder, may be loaded (it runs code from it)."""
        text = checkpoint.strip()
        return not text or self.permits(text.removeprefix(LOCAL_DIR_PREFIX))

    def permits_ray(self, address: str | None) -> bool:
        """Whether the server may connect to (or, for `local`, start) the Ray cluster at `address`."""
        text = (address or "").strip()
        return not text or self.ray_addresses is None or text in self.ray_addresses

    def ray_explanation(self) -> str:
        if self.ray_addresses:
            return f"Only the Ray clusters listed by {ALLOWED_RAY_ENV} can be used here."
        return (
            f"Embedding on Ray is off while folders are limited; whoever runs the app can allow clusters "
            f"with {ALLOWED_RAY_ENV}=head:6379 (see the README, 'Serving the app to others')."
        )

    def permits(self, folder: str | os.PathLike[str]) -> bool:
        if self.allowed is None:
            return True
        resolved = _resolve(folder)
        return any(resolved == root or root in resolved.parents for root in self.allowed)

    def check(self, folder: str | os.PathLike[str]) -> None:
        """Raise `FolderNotAllowed` with a clear message when `folder` may not be opened."""
        if not self.permits(folder):
            raise FolderNotAllowed(
                f"{display_name(os.fspath(folder))} cannot be opened here. {self.explanation}"
            )


def is_local_address(address: str | None) -> bool:
    """True when a server bound to `address` is reachable from this machine only. An empty
    address is Streamlit's default: every interface."""
    text = (address or "").strip().strip("[]")
    if not text:
        return False
    if text.lower() in LOCAL_HOSTNAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def folder_policy(server_address: str | None, environ: Mapping[str, str] | None = None) -> FolderPolicy:
    """The folders the app may open, given the address it is served on and the environment."""
    environ = os.environ if environ is None else environ
    listed = [entry for entry in environ.get(ALLOWED_FOLDERS_ENV, "").split(os.pathsep) if entry.strip()]
    demo = demo_root()
    rays = tuple(dict.fromkeys(a.strip() for a in environ.get(ALLOWED_RAY_ENV, "").split(",") if a.strip()))
    if listed:
        roots = tuple(dict.fromkeys([*(_resolve(entry.strip()) for entry in listed), demo]))
        shown = ", ".join(display_name(root) for root in roots[:-1])
        return FolderPolicy(
            roots,
            f"Only folders inside {shown} (set by {ALLOWED_FOLDERS_ENV}) and the demo can be used.",
            rays,
        )
    if is_local_address(server_address):
        return FolderPolicy(None)
    return FolderPolicy(
        (demo,),
        f"This app is served to the network (server address {server_address or 'all interfaces'!r}) and "
        f"no folders are allowed: only the demo can be used. Whoever runs it can allow folders with "
        f"{ALLOWED_FOLDERS_ENV}=/data/a{os.pathsep}/data/b (see the README, 'Serving the app to others').",
        rays,
    )


def demo_root() -> Path:
    """The folder that holds the demo folders (always allowed)."""
    return _resolve(turtle_home() / "demo")


def _resolve(folder: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(folder))).resolve()
