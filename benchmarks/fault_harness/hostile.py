"""File names a user's disk may hold and our code must survive (shared by the hostile-names tests and the fault
campaign): bytes that are not UTF-8, Markdown, HTML, right-to-left overrides, line breaks; plus one file that
is not an image and one exact copy."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

# Relative paths as bytes: what a user's disk may hold.
HOSTILE_FILES: list[bytes] = [
    b"caf\xe9.png",  # Latin-1 e-acute: not UTF-8
    b"dossier\xe9/photo \xff\xfe.png",  # a non-UTF-8 folder and file
    b"$E=mc^2$ price.png",
    b"**bold** _it_ ~~x~~.png",
    b"`rm -rf`.png",
    b"<b>bold<i>.png",
    "evil\u202egnp.png".encode(),  # right-to-left override: shows as "evilgnp.png" reversed
    b"up ..\\..\\x.png",  # backslashes are ordinary characters on Linux (names starting "." are hidden)
    b"back\\xe9slash.png",  # a literal backslash-x-e-9, not an escaped byte
    b":red[alert] :smile: :material/home:.png",
    b"line\nbreak.png",
    b"- list # head &amp; [link](www.x.org) me@x.org.png",
    b'quote"comma,semi;.png',
    "\u0645\u0631\u062d\u0628\u0627 \U0001f422.png".encode(),
]
BROKEN: bytes = b"broken \xe9 $x$.png"  # not an image: listed as skipped
COPY: bytes = b"copy of caf\xe9.png"  # same bytes as caf\xe9.png: a duplicate


def write_hostile_tree(root: Path) -> dict[bytes, bytes]:
    """Write the hostile images under `root`; returns relative path bytes → file bytes."""
    written: dict[bytes, bytes] = {}
    for i, rel in enumerate(HOSTILE_FILES):
        path = os.path.join(os.fsencode(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        image = Image.new("RGB", (32, 32), ((37 * i) % 256, (91 * i) % 256, (53 * i + 40) % 256))
        image.putpixel((i, i), (255, 255, 255))
        image.save(os.fsdecode(path), format="PNG")
        with open(path, "rb") as handle:
            written[rel] = handle.read()
    with open(os.path.join(os.fsencode(root), BROKEN), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n not an image at all")
    with open(os.path.join(os.fsencode(root), COPY), "wb") as handle:
        handle.write(written[HOSTILE_FILES[0]])
    written[COPY] = written[HOSTILE_FILES[0]]
    return written
