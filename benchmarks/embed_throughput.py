"""Embedding throughput on this machine: model only vs files on disk -> decode -> model.

    .venv/bin/python -m benchmarks embed_throughput --n 256 --backbones effnet-lite0

End-to-end is measured with `embed_images` (no cache) with 0 and N decode threads, and with a torch
DataLoader using worker processes, to pick the faster way to overlap decoding with the model.
`--source jpeg` uses synthetic 1600×1200 photos instead of the 28×28 demo PNGs (decode-heavy).
`--unfolded` adds the same backbone loaded with its batch norms left in place (`embedding/fold.py`), run
side by side with the folded one, with the largest difference between their features.
Writes benchmarks/results/embed_throughput.json (`_jpeg` suffix for --source jpeg).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

from benchmarks.common import RESULTS, write_results
from turtle_core.embedding import loading
from turtle_core.embedding.backbones import LoadedBackbone, load_backbone
from turtle_core.embedding.embed import embed_images
from turtle_core.ingest.demo import write_demo_folder
from turtle_core.ingest.scan import ImageRecord, UnusableImage, load_image, scan_folder

OUT = RESULTS / "embed_throughput.json"


def make_jpeg_folder(dest: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for i in range(n):
        folder = dest / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        small = np.roll(base, i * 7, axis=1) // (1 + i % 3)
        Image.fromarray(small).resize((1600, 1200), Image.BICUBIC).save(folder / f"{i:04d}.jpg", quality=88)
    return dest


def model_only(backbone: LoadedBackbone, records: list[ImageRecord], root: Path, batch_size: int) -> float:
    tensors = [
        backbone.preprocess(load_image(root / r.path, min_size=backbone.spec.input_size)) for r in records
    ]
    backbone.encode(torch.stack(tensors[:2]))  # warm-up
    start = time.perf_counter()
    for i in range(0, len(tensors), batch_size):
        backbone.encode(torch.stack(tensors[i : i + batch_size]))
    return len(tensors) / (time.perf_counter() - start)


def load_unfolded(name: str) -> LoadedBackbone:
    """The backbone as `load_backbone` made it before its batch norms were folded."""
    with mock.patch.object(loading, "fold_batch_norms", lambda model, _size: (model, 0)):
        return load_backbone(name, device="cpu")


def feature_difference(a: LoadedBackbone, b: LoadedBackbone, records: list[ImageRecord], root: Path) -> float:
    batch = torch.stack(
        [a.preprocess(load_image(root / r.path, min_size=a.spec.input_size)) for r in records]
    )
    return float((a.encode(batch) - b.encode(batch)).abs().max())


def end_to_end(
    backbone: LoadedBackbone, records: list[ImageRecord], root: Path, batch_size: int, workers: int
) -> float:
    backbone.encode(backbone.preprocess(Image.new("RGB", (64, 64))).unsqueeze(0))  # warm-up
    start = time.perf_counter()
    result = embed_images(root, records, backbone, cache=None, batch_size=batch_size, num_workers=workers)
    assert result.computed == len({r.content_hash for r in records})
    return len(records) / (time.perf_counter() - start)


class _Files(torch.utils.data.Dataset):
    def __init__(self, root: Path, records: list[ImageRecord], backbone: LoadedBackbone) -> None:
        self.paths = [str(root / r.path) for r in records]
        self.preprocess = backbone.preprocess
        self.size = backbone.spec.input_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        try:
            return self.preprocess(load_image(self.paths[i], min_size=self.size))
        except UnusableImage:
            return None


def _collate(items: list[torch.Tensor | None]) -> torch.Tensor:
    return torch.stack([t for t in items if t is not None])


def dataloader(
    backbone: LoadedBackbone, records: list[ImageRecord], root: Path, batch_size: int, workers: int
) -> float:
    loader = torch.utils.data.DataLoader(
        _Files(root, records, backbone), batch_size=batch_size, num_workers=workers, collate_fn=_collate
    )
    backbone.encode(backbone.preprocess(Image.new("RGB", (64, 64))).unsqueeze(0))
    start = time.perf_counter()
    seen = 0
    for batch in loader:
        backbone.encode(batch)
        seen += len(batch)
    assert seen == len(records)
    return len(records) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=256, help="number of images")
    parser.add_argument("--backbones", nargs="+", default=["effnet-lite0"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="decode threads / DataLoader processes")
    parser.add_argument("--repeat", type=int, default=2, help="rounds over all modes; the best is reported")
    parser.add_argument("--source", choices=["demo", "jpeg"], default="demo")
    parser.add_argument("--out", type=Path, default=None, help=f"default {OUT} (demo source)")
    parser.add_argument("--unfolded", action="store_true", help="also the backbone with its norms unfolded")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.source == "demo":
            per_class = -(-args.n // 10)
            root = write_demo_folder(Path(tmp) / "demo", per_class=per_class)
        else:
            root = make_jpeg_folder(Path(tmp) / "jpeg", args.n)
        records = scan_folder(root).images[: args.n]
        rows = []
        for name in args.backbones:
            backbone = load_backbone(name, device="cpu")
            runs = {
                "model only (pre-decoded)": lambda b=backbone: model_only(b, records, root, args.batch_size),
                "end-to-end, decode inline": lambda b=backbone: end_to_end(
                    b, records, root, args.batch_size, 0
                ),
                f"end-to-end, {args.workers} decode thread(s)": lambda b=backbone: end_to_end(
                    b, records, root, args.batch_size, args.workers
                ),
                f"end-to-end, DataLoader {args.workers} process(es)": lambda b=backbone: dataloader(
                    b, records, root, args.batch_size, args.workers
                ),
            }
            if args.unfolded:
                plain = load_unfolded(name)
                difference = feature_difference(backbone, plain, records[:32], root)
                print(f"{name}: largest feature difference, folded against unfolded: {difference:.2e}")
                rows.append({"backbone": name, "mode": "feature difference", "max_abs": difference})
                runs["model only, norms unfolded"] = lambda b=plain: model_only(
                    b, records, root, args.batch_size
                )
                runs[f"end-to-end, {args.workers} decode thread(s), norms unfolded"] = lambda b=plain: (
                    end_to_end(b, records, root, args.batch_size, args.workers)
                )
            rates: dict[str, list[float]] = {mode: [] for mode in runs}
            for _ in range(args.repeat):  # interleaved, so load from other processes hits all modes alike
                for mode, run in runs.items():
                    rates[mode].append(run())
            for mode, values in rates.items():
                best = max(values)
                rows.append({"backbone": name, "mode": mode, "images_per_s": round(best, 2),
                             "all_runs": [round(v, 2) for v in values]})  # fmt: skip
                print(
                    f"{name:14s} {mode:44s} {best:8.1f} images/s  (runs: {', '.join(f'{v:.1f}' for v in values)})"
                )

    report = {
        "n": len(records),
        "source": args.source,
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "results": rows,
    }
    out = args.out or (OUT if args.source == "demo" else OUT.with_name(f"{OUT.stem}_{args.source}.json"))
    write_results(out, report)
    print(f"\nwritten to {out}")
