"""Name suggestions offline (EfficientNet-Lite0's ImageNet head voting over each class's images): how often
the suggestions contain the class name or a WordNet relative, how often a wrong word is shown, and how
often nothing is.

    nice -n 10 .venv/bin/python -m benchmarks cleaning_names

Sets: the suite sets with nameable classes (Animal-MNIST silhouettes resampled, emoji) from their cached
Lite0 features (benchmarks/features/suite), and photos: crops of five pictures shipped with
scikit-image (a cat, a cup of coffee, a rocket, an astronaut, a motorcycle), embedded here. Each class
is one cluster (the suggestions are judged, not the discovery). A suggestion counts as right when it
is the class name, a WordNet relative of it (a synset below or above one of the name's noun synsets,
read from WordNet 3.0's data.noun, Debian package wordnet-base) or a listed synonym; without WordNet
only names and synonyms count (the JSON says which). Writes benchmarks/results/cleaning_names.json.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import REPO as ROOT

FEATURES = ROOT / "benchmarks" / "features" / "suite"
SUITE = ROOT / "benchmarks" / "data" / "suite"
RESULTS = ROOT / "benchmarks" / "results" / "cleaning_names.json"
WORDNET = Path("/usr/share/wordnet/data.noun")
SYNONYMS = {  # class folder → the words a curator would accept besides WordNet's relatives
    "cup": ["cup", "coffee", "espresso", "coffee mug"],
    "motorcycle": ["motorcycle", "moped", "motor scooter"],
    "rocket": ["rocket", "missile", "space shuttle", "projectile"],
    "smiley": ["smiley", "face"],
    "fast_food": ["fast food", "hamburger", "cheeseburger", "hotdog", "french fries", "pizza"],
    "animal_face": ["animal", "face"],
}
PHOTOS = {
    "cat": "chelsea.png",
    "cup": "coffee.png",
    "rocket": "rocket.jpg",
    "astronaut": "astronaut.png",
    "motorcycle": "motorcycle_left.png",
}


class WordNet:
    """Noun synsets of WordNet 3.0 (ImageNet's synset ids are its offsets): lemmas and hypernyms."""

    def __init__(self, path: Path) -> None:
        self.lemmas: dict[str, list[str]] = {}
        self.parents: dict[str, list[str]] = {}
        self.by_lemma: dict[str, list[str]] = {}
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            parts = line.split(" | ")[0].split()
            offset, count = parts[0], int(parts[3], 16)
            words = [parts[4 + 2 * i].lower().replace("_", " ") for i in range(count)]
            pointers_at = 4 + 2 * count
            n_pointers = int(parts[pointers_at])
            parents = []
            for j in range(n_pointers):
                symbol, target = parts[pointers_at + 1 + 4 * j], parts[pointers_at + 2 + 4 * j]
                if symbol in ("@", "@i"):
                    parents.append(target)
            self.lemmas[offset] = words
            self.parents[offset] = parents
            for word in words:
                self.by_lemma.setdefault(word, []).append(offset)

    def ancestors(self, offset: str) -> set[str]:
        seen, stack = set(), [offset]
        while stack:
            for parent in self.parents.get(stack.pop(), []):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen


def class_offsets() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i)[1:] for i in range(info.num_classes())]


def right(word_index: int, class_name: str, wordnet: WordNet | None, offsets: list[str]) -> bool:
    from turtle_core.cleaning.suggest import imagenet_names

    word = imagenet_names()[word_index].lower()
    name = class_name.replace("_", " ").lower()
    accepted = [name, *SYNONYMS.get(class_name, [])]
    if any(a in word or word in a for a in accepted):
        return True
    if wordnet is None:
        return False
    mine = offsets[word_index]
    for synset in wordnet.by_lemma.get(name, []):
        if synset == mine or synset in wordnet.ancestors(mine) or mine in wordnet.ancestors(synset):
            return True
    return False


def photo_features() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from turtle_core.embedding.embed import embed_folder_images
    from turtle_core.ingest.scan import scan_folder

    folder = Path(tempfile.gettempdir()) / "turtle-names-benchmark"
    wheel = next((SUITE / "_sources").glob("*.whl"))
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(wheel) as archive:
        for label, file in PHOTOS.items():
            picture = Image.open(io.BytesIO(archive.read(f"skimage/data/{file}"))).convert("RGB")
            (folder / label).mkdir(parents=True, exist_ok=True)
            width, height = picture.size
            for i in range(20):
                f = rng.uniform(0.6, 0.95)
                w, h = int(width * f), int(height * f)
                x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                crop = picture.crop((x, y, x + w, y + h))
                if i % 2:
                    crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                crop.save(folder / label / f"{label}_{i:02d}.jpg", quality=90)
    scan = scan_folder(folder)
    embedded = embed_folder_images(
        folder, scan.images, "effnet-lite0", cache_root=folder.parent / "names-cache"
    )
    classes = sorted(PHOTOS)
    labels = np.asarray(
        [classes.index(r.label) for r, ok in zip(scan.images, embedded.ok, strict=True) if ok]
    )
    return embedded.vectors, labels, classes


def evaluate(features: np.ndarray, labels: np.ndarray, classes: list[str], wordnet: WordNet | None) -> dict:
    from turtle_core.cleaning.suggest import imagenet_names, imagenet_top_words, suggest_names
    from turtle_core.embedding.heads import imagenet_head

    weight, bias = imagenet_head("effnet-lite0")
    top = imagenet_top_words(features, weight, bias)
    found = suggest_names(top, labels, list(range(len(classes))))
    offsets = class_offsets()
    index = {name: i for i, name in enumerate(imagenet_names())}
    per_class, hits, wrong, empty = {}, 0, 0, 0
    for cid, name in enumerate(classes):
        words = [s.name for s in found[cid]]
        correct = [right(index[w], name, wordnet, offsets) for w in words]
        hits += any(correct)
        wrong += bool(words) and not any(correct)
        empty += not words
        per_class[name] = {"suggested": [s.label() for s in found[cid]], "right": correct}
    n = len(classes)
    return {
        "classes": n,
        "contains_name_or_relative": round(hits / n, 3),
        "only_wrong_words_shown": round(wrong / n, 3),
        "nothing_shown": round(empty / n, 3),
        "per_class": per_class,
    }


def main(argv: list[str] | None = None) -> None:
    wordnet = WordNet(WORDNET) if WORDNET.exists() else None
    results: dict = {
        "wordnet": "WordNet 3.0 data.noun" if wordnet else "not installed: names and synonyms only"
    }
    for name in ("animal_imbalanced", "emoji"):
        data = np.load(FEATURES / f"{name}.npz", allow_pickle=False)
        results[name] = evaluate(data["features"], data["labels"], [str(c) for c in data["classes"]], wordnet)
    results["photos"] = evaluate(*photo_features(), wordnet)
    results["load"] = [round(x, 2) for x in os.getloadavg()]
    for key in ("animal_imbalanced", "emoji", "photos"):
        summary = {k: v for k, v in results[key].items() if k != "per_class"}
        print(key, summary)
        for cls, row in results[key]["per_class"].items():
            print("   ", cls, row["suggested"], row["right"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
