"""Image-quality flags: measured at scan time, kept in the scan file, and in agreement with cleanvision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from turtle_core.cleaning.quality import QUALITY_FLAGS, THRESHOLDS, odd_sizes, quality_flags
from turtle_core.ingest.quality import QUALITY_SIDE, measure_quality
from turtle_core.ingest.scan import SCAN_FORMAT_VERSION, ScanResult, scan_folder


def natural(rng: np.random.Generator, width: int = 120, height: int = 96) -> Image.Image:
    """A photo-like picture: smooth colour waves, grain and a few blobs."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        fx, fy, phase = rng.uniform(0.02, 0.15), rng.uniform(0.02, 0.15), rng.uniform(0, 6)
        pixels[..., channel] = rng.uniform(60, 200) + 50 * np.sin(fx * xx + phase) * np.cos(fy * yy)
    pixels += rng.normal(0, 12, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        draw.ellipse((x, y, x + int(rng.integers(5, 30)), y + int(rng.integers(5, 30))), fill=colour)
    return image


def planted_folder(root: Path, per_kind: int = 8, seed: int = 0) -> dict[str, str]:
    """Untouched pictures and planted dark, light, blurry, grey, wide and flat ones; file stem → kind."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    for i in range(per_kind):
        image = natural(rng)
        pixels = np.asarray(image, np.float32)
        planted = {
            "clean": image,
            "dark": Image.fromarray((pixels * 0.2).astype(np.uint8)),
            "light": Image.fromarray((255 - (255 - pixels) * 0.03).astype(np.uint8)),
            # cleanvision's blur score barely responds to blur (its grey-histogram term dominates); this
            # kind is here for the agreement test, and is not required to be flagged
            "blurry": ImageOps.equalize(image).filter(ImageFilter.GaussianBlur(6)),
            "grey": image.convert("L"),
            "wide": image.resize((300, 60)),
            "flat": Image.new("RGB", (120, 96), tuple(int(v) for v in rng.integers(0, 255, 3))),
        }
        for kind, picture in planted.items():
            picture.save(root / f"{kind}_{i}.png")
            kinds[f"{kind}_{i}"] = kind
        image.save(root / f"photo_{i}.jpg", quality=85)
        kinds[f"photo_{i}"] = "clean"
    return kinds


EXPECTED = {
    "dark": "dark",
    "light": "light",
    "grey": "grayscale",
    "wide": "odd_aspect_ratio",
    "flat": "low_information",
}


def test_planted_images_get_their_flag_and_clean_ones_none(tmp_path: Path) -> None:
    kinds = planted_folder(tmp_path / "images")
    scan = scan_folder(tmp_path / "images")
    flags = quality_flags(scan.images)
    assert flags.measured.all()
    for row, record in enumerate(scan.images):
        kind = kinds[Path(record.path).stem]
        names = set(flags.names_of(row)) - {"odd_size"}
        if kind == "clean":
            assert names == set(), record.path
        elif kind in EXPECTED:
            assert EXPECTED[kind] in names, (record.path, names)
    assert flags.counts()["dark"] >= 8 and flags.column("grayscale").sum() == 8


def test_flags_agree_with_cleanvision(tmp_path: Path) -> None:
    imagelab = pytest.importorskip("cleanvision").Imagelab
    root = tmp_path / "images"
    planted_folder(root, per_kind=6, seed=1)
    scan = scan_folder(root)
    ours = quality_flags(scan.images)
    lab = imagelab(data_path=str(root))
    lab.find_issues({flag: {} for flag in QUALITY_FLAGS}, verbose=False)
    issues = lab.issues
    issues.index = [Path(path).name for path in issues.index]
    for flag in QUALITY_FLAGS:
        theirs = np.asarray([bool(issues.loc[record.path, f"is_{flag}_issue"]) for record in scan.images])
        agreement = float((theirs == ours.column(flag)).mean())
        assert agreement >= 0.95, (flag, agreement)
        assert theirs.sum() > 0 or flag == "odd_size"  # the set exercises every flag but size


def test_scan_file_keeps_the_scores_and_an_older_scan_is_measured_again(tmp_path: Path) -> None:
    root = tmp_path / "images"
    planted_folder(root, per_kind=2)
    scan = scan_folder(root)
    data = json.loads(json.dumps(scan.to_dict()))
    assert data["version"] == SCAN_FORMAT_VERSION == 4
    assert ScanResult.from_dict(data).images == scan.images

    for version, images in (
        (1, [{k: v for k, v in r.items() if k != "quality"} for r in data["images"]]),
        (2, data["images"]),  # format 2's blur score means something else: its scores are not used
    ):
        unmeasured = ScanResult.from_dict({**data, "version": version, "images": images})
        assert all(record.quality is None for record in unmeasured.images)
        assert not quality_flags(unmeasured.images).column("dark").any()  # no scores, no flags
        again = scan_folder(root, previous=unmeasured)
        assert again.reused == 0 and again.images == scan.images
        assert scan_folder(root, previous=again).reused == len(scan.images)

    # format 3's signatures were 8 × 8: read without them, measured again at the next scan
    smaller = ScanResult.from_dict({**data, "version": 3})
    assert all(record.signature is None and record.quality for record in smaller.images)
    again = scan_folder(root, previous=smaller)
    assert again.reused == 0 and again.images == scan.images


def test_odd_size_follows_cleanvisions_rule() -> None:
    sizes = np.asarray([*np.linspace(90.0, 110.0, 12), 400.0, 10.0])
    assert odd_sizes(sizes).tolist() == [False] * 12 + [True, True]
    assert odd_sizes(np.asarray([96.0] * 9 + [48.0])).tolist() == [False] * 9 + [True]


def test_scan_without_quality_is_what_the_benchmark_compares(tmp_path: Path) -> None:
    planted_folder(tmp_path / "images", per_kind=1)
    plain = scan_folder(tmp_path / "images", quality=False)
    assert all(record.quality is None and record.signature is None for record in plain.images)
    assert [r.path for r in plain.images] == [r.path for r in scan_folder(tmp_path / "images").images]


def test_scores_do_not_depend_on_how_the_scan_shares_out_its_images(tmp_path: Path) -> None:
    root = tmp_path / "images"
    planted_folder(root, per_kind=8)  # 64 images of four sizes: more than one share of a thread
    one_thread = scan_folder(root, workers=1)
    assert scan_folder(root, workers=3).images == one_thread.images
    pngs = [record for record in one_thread.images if record.path.endswith(".png")]
    assert len(pngs) == 56
    for record in pngs:  # each alone, as the scan read it (JPEGs are decoded at a reduced scale)
        with Image.open(root / record.path) as image:
            assert measure_quality(image, image) == (record.quality, record.signature)


def shapes(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A drawing: flat colours with sharp edges and no grain (the kind of picture emoji and icons are)."""
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(width // 8, width // 3))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + size, y + size), fill=colour)
        else:
            draw.rectangle((x, y, x + size, y + size // 2), fill=colour)
    return image


def blurred(image: Image.Image) -> Image.Image:
    """A Gaussian blur of 2 px at the size the sharpness is measured at (the benchmark's planted blur)."""
    scale = -(-max(image.size) // QUALITY_SIDE)
    return image.filter(ImageFilter.GaussianBlur(2 * scale))


@pytest.mark.parametrize("size", [(40, 32), (96, 96), (160, 120), (600, 400)])
@pytest.mark.parametrize("kind", ["natural", "shapes"])
def test_a_gaussian_blurred_copy_is_blurry_and_its_source_is_not(size: tuple[int, int], kind: str) -> None:
    rng = np.random.default_rng(sum(size))
    for _ in range(3):
        width, height = size
        sharp = natural(rng, width, height) if kind == "natural" else shapes(rng, width, height)
        sharp_score = measure_quality(sharp, sharp)[0].blurry
        soft_score = measure_quality(blurred(sharp), blurred(sharp))[0].blurry
        assert sharp_score >= THRESHOLDS["blurry"] > soft_score, (size, kind, sharp_score, soft_score)


def test_sharpness_does_not_depend_on_contrast_and_flat_images_are_not_blurry() -> None:
    rng = np.random.default_rng(3)
    sharp = shapes(rng, 96, 96)
    faint = Image.fromarray((np.asarray(sharp, np.float32) * 0.15 + 100).astype(np.uint8))
    grey = sharp.convert("L")
    for image in (sharp, faint, grey):
        assert measure_quality(image, image)[0].blurry >= THRESHOLDS["blurry"]
        assert measure_quality(blurred(image), blurred(image))[0].blurry < THRESHOLDS["blurry"]
    flat = Image.new("RGB", (96, 96), (120, 30, 200))
    assert measure_quality(flat, flat)[0].blurry == 1.0


def test_blur_is_flagged_in_a_scan_and_relative_to_a_folder_of_soft_pictures(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    sharp, soft = tmp_path / "sharp", tmp_path / "soft"
    sharp.mkdir()
    soft.mkdir()
    for i in range(24):
        picture = shapes(rng, 96, 96) if i % 2 else natural(rng, 96, 96)
        (blurred(picture) if i < 3 else picture).save(sharp / f"{i:02d}.png")
        # tiny pictures enlarged: every edge spread over a few pixels, softer than the threshold
        small = picture.resize((24, 24), Image.Resampling.BOX).resize((96, 96), Image.Resampling.BICUBIC)
        (small.filter(ImageFilter.GaussianBlur(4)) if i < 3 else small).save(soft / f"{i:02d}.png")
    for folder in (sharp, soft):
        scan = scan_folder(folder)
        blurry = quality_flags(scan.images).column("blurry")
        assert blurry.tolist() == [i < 3 for i in range(24)], (folder.name, blurry)
    alone = scan_folder(soft).images[5:6]  # one soft picture judged without its folder: the threshold alone
    assert quality_flags(alone).column("blurry").tolist() == [True]
