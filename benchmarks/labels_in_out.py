"""Labels in, categories out, on the suite's folders: a curation made of imported labels labels new images.

    nice -n 10 .venv/bin/python -m benchmarks labels_in_out [--sets emoji,digits] [--out FILE]

Per set, each class's images are split into alternate halves A and B (by file name). A's folder gets every
one of A's true labels through `Project.import_labels` (a quick discovery runs first, as the CLI's
`import-labels` does); then (1) `classify` labels B's folder with A's categories, and (2) B's images are
copied into A's folder and `Project.update` labels them. Both are scored on B against the anchor: a plain
logistic probe (scikit-learn, standardised features, C = 0.1) trained on A's features. Also checked: every
label of A is unchanged after the update, and every image of B got a label (an image that fits none of the
categories stays in "New images": counted as labelled-but-not-forced, and as wrong in the accuracy).
The embeddings come from the suite's cache (`benchmarks/data/embedding-cache`, filled by
`python -m benchmarks suite.features`): nothing is re-embedded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA, RESULTS, write_results

SUITE = DATA / "suite"
CACHE = DATA / "embedding-cache"
SETS = ("grey_textures", "glyphs", "emoji", "digits", "colour_crops", "animal_imbalanced", "animal_mnist")


def halves(folder: Path) -> tuple[list[Path], list[Path]]:
    """Each class's image files in name order, alternately to A and B."""
    a, b = [], []
    for class_dir in sorted(
        path for path in folder.iterdir() if path.is_dir() and not path.name.startswith((".", "_"))
    ):
        files = sorted(
            path for path in class_dir.iterdir() if path.is_file() and not path.name.startswith(".")
        )
        a.extend(files[0::2])
        b.extend(files[1::2])
    return a, b


def copy_into(files: list[Path], source: Path, dest: Path) -> None:
    for file in files:
        target = dest / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)


def probe_anchor(train: list[np.ndarray], labels: np.ndarray, test: list[np.ndarray]) -> np.ndarray:
    """The anchor of the shared curator-effort doc: standardised features, logistic regression, C = 0.1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, Y = np.hstack(train), np.hstack(test)
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(X), labels)
    return model.predict(scaler.transform(Y))


def run_set(name: str, work: Path) -> dict:
    from turtle_core.ingest.labels import read_labels_csv
    from turtle_core.operations.classifier import classify_folder
    from turtle_core.operations.project import Project

    source = SUITE / name
    a_files, b_files = halves(source)
    a_dir, b_dir = work / name / "A", work / name / "B"
    copy_into(a_files, source, a_dir)
    copy_into(b_files, source, b_dir)
    started = time.perf_counter()
    project = Project.open(a_dir)
    csv = "path,label\n" + "".join(f"{f.relative_to(source).as_posix()},{f.parent.name}\n" for f in a_files)
    imported = project.import_labels(read_labels_csv(csv.encode()))
    import_s = time.perf_counter() - started
    snap = project.snapshot()
    a_labels = dict(zip((r.path for r in snap.images), snap.curation.labels_as_names(), strict=True))

    started = time.perf_counter()
    classified = classify_folder(project.classifier(), b_dir)
    classify_s = time.perf_counter() - started
    truth_b = np.asarray([record.path.split("/")[0] for record in classified.images])
    classify_accuracy = float((np.asarray(classified.labels) == truth_b).mean())

    a_spaces = project.spaces(snap.discovery)
    a_truth = np.asarray([record.path.split("/")[0] for record in snap.images])
    from turtle_core.operations.pipeline import embed_records

    b_images, b_spaces, _, _ = embed_records(b_dir, classified.images, snap.discovery.backbones, {})
    anchor = probe_anchor(a_spaces, a_truth, b_spaces)
    anchor_accuracy = float((anchor == truth_b).mean())

    copy_into([b_dir / r.path for r in b_images], b_dir, a_dir)
    started = time.perf_counter()
    report = project.update()
    update_s = time.perf_counter() - started
    after = project.snapshot()
    names = after.curation.labels_as_names()
    by_path = dict(zip((r.path for r in after.images), names, strict=True))
    a_kept = all(by_path.get(path) == label for path, label in a_labels.items())
    b_paths = [record.path for record in b_images]
    b_given = np.asarray([by_path.get(path) for path in b_paths], dtype=object)
    categories = set(a_labels.values())
    forced = np.asarray([label in categories for label in b_given])
    update_accuracy = float((b_given == truth_b[: len(b_given)]).mean())
    row = {
        "set": name,
        "a_images": len(a_files),
        "b_images": len(b_files),
        "imported": imported.n_imported,
        "anchor_probe_accuracy": round(anchor_accuracy, 4),
        "classify_accuracy": round(classify_accuracy, 4),
        "update_accuracy": round(update_accuracy, 4),
        "update_accuracy_of_labelled": round(float((b_given[forced] == truth_b[forced]).mean()), 4)
        if forced.any()
        else None,
        "b_fit_none": int((~forced).sum()),
        "b_all_labelled": bool(all(label is not None for label in b_given)) and len(b_given) == len(b_files),
        "a_labels_unchanged": bool(a_kept),
        "update_added": report.n_added,
        "seconds": {
            "import": round(import_s, 1),
            "classify": round(classify_s, 1),
            "update": round(update_s, 1),
        },
    }
    row["classify_within_0.02"] = classify_accuracy >= anchor_accuracy - 0.02
    row["update_within_0.02"] = update_accuracy >= anchor_accuracy - 0.02
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--out", type=Path, default=RESULTS / "labels_in_out.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="labels-in-out-") as tmp:
        home = Path(tmp) / "home"
        (home).mkdir()
        os.symlink(CACHE.resolve(), home / "embeddings")  # the suite's embeddings: nothing is re-embedded
        os.environ["TURTLE_HOME"] = str(home)
        for name in args.sets.split(","):
            if not (SUITE / name).is_dir():
                print(f"{name}: not built (python -m benchmarks suite.build), skipped")
                continue
            rows.append(run_set(name, Path(tmp) / "sets"))
            r = rows[-1]
            print(
                f"{name:18} anchor {r['anchor_probe_accuracy']:.3f} · classify {r['classify_accuracy']:.3f} · "
                f"update {r['update_accuracy']:.3f} ({r['b_fit_none']} fit none) · A unchanged "
                f"{r['a_labels_unchanged']} · B all labelled {r['b_all_labelled']} · {r['seconds']}",
                flush=True,
            )
    out = write_results(args.out, {"rows": rows})
    print(f"wrote {out}")
