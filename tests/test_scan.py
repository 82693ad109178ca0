"""Scanning real folders full of broken, odd and perfectly fine files."""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from turtle_core.atomic import atomic_write_json, read_json
from turtle_core.ingest import scan as scan_module
from turtle_core.ingest.scan import ScanError, ScanResult, UnusableImage, load_image, scan_folder
from turtle_core.progress import Cancelled, Progress


def _png_bytes(size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, color)
    image.putpixel((1, 1), (0, 255, 0))
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_bytes(size: tuple[int, int] = (64, 48), **kwargs: object) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=90, **kwargs
    )
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` (a decompression bomb shape), with a tiny body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    root = tmp_path / "messy"
    (root / "good").mkdir(parents=True)
    (root / "bad").mkdir()
    (root / "good" / "a.png").write_bytes(_png_bytes(color=(10, 20, 30)))
    (root / "good" / "b.jpg").write_bytes(_jpeg_bytes())
    (root / "good" / "b copy.jpg").write_bytes(_jpeg_bytes())  # exact duplicate of b.jpg
    (root / "good" / "é 🐢 name.png").write_bytes(_png_bytes(color=(1, 2, 3)))
    with open(os.path.join(os.fsencode(root / "good"), b"caf\xe9.png"), "wb") as handle:
        handle.write(_png_bytes(color=(4, 5, 6)))
    (root / "good" / "notes.txt").write_text("not an image, ignored")
    (root / "good" / ".hidden.png").write_bytes(_png_bytes())
    (root / ".thumbs").mkdir()
    (root / ".thumbs" / "x.png").write_bytes(_png_bytes())
    (root / "bad" / "empty.jpg").write_bytes(b"")
    (root / "bad" / "truncated.png").write_bytes(_png_bytes((200, 200))[:-200])
    jpeg = _jpeg_bytes((256, 256))
    (root / "bad" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "bad" / "text.png").write_text("hello, I am text")
    (root / "bad" / "random.jpg").write_bytes(np.random.default_rng(1).bytes(5000))
    (root / "bad" / "bomb.png").write_bytes(_png_header_only(20_000, 10_000))  # 200 M pixels
    (root / "bad" / "huge-bomb.png").write_bytes(_png_header_only(40_000, 40_000))  # beyond 2× the limit
    (root / "top.png").write_bytes(_png_bytes(color=(90, 90, 90)))
    (root / "bad" / "loop").symlink_to(root, target_is_directory=True)
    return root


def test_scan_reports_every_file_exactly(messy: Path) -> None:
    result = scan_folder(messy)
    paths = [r.path for r in result.images]
    assert paths == sorted(
        ["good/a.png", "good/b.jpg", "good/b copy.jpg", "good/é 🐢 name.png", "good/caf\udce9.png", "top.png"]
    )
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons == {
        "bad/empty.jpg": "empty file (0 bytes)",
        "bad/truncated.png": "corrupt or truncated image data",
        "bad/truncated.jpg": "corrupt or truncated image data",
        "bad/text.png": "not an image (format not recognised)",
        "bad/random.jpg": "not an image (format not recognised)",
        "bad/bomb.png": "too large: 200,000,000 pixels exceeds the 178,956,970 limit (possible decompression bomb)",
        "bad/huge-bomb.png": "too large: 1,600,000,000 pixels exceeds the 178,956,970 limit "
        "(possible decompression bomb)",
    }
    assert result.duplicates == [["good/b copy.jpg", "good/b.jpg"]]
    assert result.ignored == 1  # notes.txt; hidden files are not even counted
    summary = result.summary()
    assert summary["images"] == 6 and summary["skipped"] == 7 and summary["duplicate_files"] == 1
    by_path = {r.path: r for r in result.images}
    assert by_path["top.png"].label is None and by_path["good/a.png"].label == "good"
    assert (by_path["good/b.jpg"].width, by_path["good/b.jpg"].height) == (64, 48)
    assert by_path["good/b.jpg"].content_hash == by_path["good/b copy.jpg"].content_hash
    assert by_path["good/b.jpg"].size == (messy / "good" / "b.jpg").stat().st_size
    # the non-UTF-8 name still reaches its file
    assert load_image(os.path.join(str(messy), "good/caf\udce9.png")).size == (32, 24)


def test_scan_result_json_round_trip(messy: Path, tmp_path: Path) -> None:
    result = scan_folder(messy)
    atomic_write_json(tmp_path / "scan.json", result.to_dict())
    back = ScanResult.from_dict(read_json(tmp_path / "scan.json"))
    assert back == result
    json.dumps(result.to_dict(), ensure_ascii=True)  # JSON-safe, surrogates included


def test_folder_labels(make_image_tree, tmp_path: Path) -> None:
    root = make_image_tree({"cats": 2, "dogs": 3})
    assert scan_folder(root).folder_labels() == ["cats", "cats", "dogs", "dogs", "dogs"]
    (root / "loose.png").write_bytes(_png_bytes())
    assert scan_folder(root).folder_labels() is None
    single = make_image_tree({"only": 3}, root=tmp_path / "single")
    assert scan_folder(single).folder_labels() is None


def test_unreadable_file_is_skipped(messy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = messy / "good" / "a.png"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        target.chmod(0)
        try:
            result = scan_folder(messy)
        finally:
            target.chmod(0o644)
    else:  # root reads anything: make open() refuse instead
        real_open = open

        def refusing_open(file, *args, **kwargs):
            if os.fspath(file) == str(target):
                raise PermissionError(13, "Permission denied", str(target))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refusing_open)
        result = scan_folder(messy)
    assert {s.path: s.reason for s in result.skipped}["good/a.png"] == "unreadable: permission denied"
    assert "good/a.png" not in [r.path for r in result.images]


def test_bad_roots_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(_png_bytes())
    with pytest.raises(ScanError, match="not a folder"):
        scan_folder(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    empty = scan_folder(tmp_path / "empty")
    assert empty.images == [] and empty.skipped == [] and empty.summary()["images"] == 0


def test_incremental_rescan_reuses_unchanged_records(messy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = scan_folder(messy)
    calls: list[int] = []
    real_hash = scan_module.hash_bytes

    def counting_hash(data: bytes) -> str:
        calls.append(len(data))
        return real_hash(data)

    monkeypatch.setattr(scan_module, "hash_bytes", counting_hash)
    second = scan_folder(messy, previous=first)
    assert second.images == first.images
    assert second.reused == len(first.images)
    non_empty_bad = [s for s in first.skipped if s.reason != "empty file (0 bytes)"]
    assert len(calls) == len(non_empty_bad)  # only the files that were bad before are read again

    calls.clear()
    changed = messy / "good" / "a.png"
    changed.write_bytes(_png_bytes(color=(250, 250, 0)))
    os.utime(changed, ns=(1, 1_000_000_000))
    third = scan_folder(messy, previous=second)
    assert len(calls) == len(non_empty_bad) + 1
    new_record = next(r for r in third.images if r.path == "good/a.png")
    old_record = next(r for r in first.images if r.path == "good/a.png")
    assert new_record.content_hash != old_record.content_hash


def test_progress_and_cancel(messy: Path) -> None:
    reports: list[Progress] = []
    scan_folder(messy, progress=reports.append)
    assert reports and all(p.stage == "scan" for p in reports)
    assert reports[-1].done == reports[-1].total == 13
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        scan_folder(messy, cancel=cancel)


def test_symlinked_folder_is_followed_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "x.png").write_bytes(_png_bytes())
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(real, target_is_directory=True)
    (root / "link2").symlink_to(real, target_is_directory=True)
    result = scan_folder(root)
    assert [r.path for r in result.images] == ["link/x.png"]


# ---------------------------------------------------------------- load_image


def _save(image: Image.Image, path: Path, **kwargs: object) -> Path:
    image.save(path, **kwargs)
    return path


def test_exif_rotated_jpeg_loads_upright(tmp_path: Path) -> None:
    image = Image.new("RGB", (60, 40), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(image, tmp_path / "rotated.jpg", exif=exif.tobytes())
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (40, 60)
    record = scan_folder(tmp_path).images[0]
    assert (record.width, record.height) == (40, 60)


def test_sixteen_bit_greyscale(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 50).astype(np.uint16), (20, 1))
    path = _save(Image.fromarray(ramp), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    loaded = np.asarray(load_image(path))
    assert loaded.shape == (20, 50, 3) and loaded.dtype == np.uint8
    assert loaded[0, 0, 0] == 0 and loaded[0, -1, 0] == 255 and 120 <= loaded[0, 25, 0] <= 135


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    loaded = load_image(_save(rgba, tmp_path / "alpha.png"))
    assert loaded.mode == "RGB"
    assert loaded.getpixel((5, 5)) == (255, 255, 255) and loaded.getpixel((0, 0)) == (255, 0, 0)


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("P", (16, 16), 0), Image.new("P", (16, 16), 1)]
    for frame in frames:
        frame.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.getpixel((3, 3)) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "PNG"])
def test_other_formats_load_to_rgb(tmp_path: Path, fmt: str) -> None:
    image = Image.new("RGB", (30, 20), (0, 128, 255))
    path = _save(
        image, tmp_path / f"img.{fmt.lower()}", format=fmt, **({"lossless": True} if fmt == "WEBP" else {})
    )
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (30, 20) and loaded.getpixel((5, 5)) == (0, 128, 255)


def test_greyscale_and_palette_convert(tmp_path: Path) -> None:
    grey = load_image(_save(Image.new("L", (8, 8), 77), tmp_path / "grey.png"))
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (77, 77, 77)
    cmyk = load_image(_save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), tmp_path / "cmyk.jpg"))
    assert cmyk.mode == "RGB"


def test_load_image_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t.jpg").write_bytes(_jpeg_bytes((256, 256))[:3000])
    with pytest.raises(UnusableImage, match="corrupt or truncated"):
        load_image(tmp_path / "t.jpg")
    (tmp_path / "x.png").write_text("nope")
    with pytest.raises(UnusableImage, match="not an image"):
        load_image(tmp_path / "x.png")
    small = _save(Image.new("RGB", (100, 100)), tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    with pytest.raises(UnusableImage) as info:
        load_image(small)
    assert (
        info.value.reason == "too large: 10,000 pixels exceeds the 5,000 limit (possible decompression bomb)"
    )


def test_jpeg_draft_keeps_requested_size(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(_jpeg_bytes((1600, 1200)))
    loaded = load_image(path, min_size=224)
    assert min(loaded.size) >= 224 and loaded.size[0] < 1600
    assert load_image(path).size == (1600, 1200)
