"""The image lists that curations are made for, kept by key (`DiscoveryResult.image_key`).

A curation file names the image list its rows refer to. Keeping each list on its own (written once, never
changed) means a curation can always be carried onto another list by path: after a rescan that was
interrupted between writing the new discovery and the new curation, or when the discovery it was made from
is damaged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from turtle_core.atomic import atomic_write_bytes
from turtle_core.ingest.scan import ImageRecord

FORMAT = 1
_KEY = re.compile(r"^[0-9a-f]{8,64}$")


class ImageLists:
    """`<folder>/<key>.json`: one image list per key."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path_for(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not an image-list key: {key!r}")
        return self.folder / f"{key}.json"

    def write(self, key: str, images: Sequence[ImageRecord]) -> None:
        """Keep `images` under `key` (a list already kept is not written again)."""
        path = self.path_for(key)
        if path.exists():
            return
        data = {"format": FORMAT, "key": key, "images": [asdict(record) for record in images]}
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(data, ensure_ascii=True).encode("ascii"))

    def read(self, key: str) -> list[ImageRecord] | None:
        """The list kept under `key`; None when there is none or it cannot be read."""
        try:
            data = json.loads(self.path_for(key).read_bytes().decode("ascii"))
            if data.get("format") != FORMAT or data.get("key") != key:
                return None
            return [ImageRecord(**record) for record in data["images"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def prune(self, keep: Iterable[str]) -> int:
        """Delete the lists no kept file refers to; returns how many went."""
        wanted = {f"{key}.json" for key in keep}
        removed = 0
        for path in self.folder.glob("*.json") if self.folder.is_dir() else []:
            if path.name not in wanted:
                try:
                    path.unlink()
                    removed += 1
                except OSError:
                    continue
        return removed
