"""Fixes that propagate without making labels worse: re-label unchecked images only where the evidence says so.

The learner (`fit_learner`) is a linear probe trained on the curator's checked images, over the labels they
carry. It is trusted only as far as the checked images vouch for it: each checked image is predicted by the
learner fitted without it (k-fold, `held_out`), which shows what the learner would have done to it had it
been left unchecked: made the curator's fix (*helpful*: the curator had moved it, and the learner finds its
new label) or broken a right label (*harmful*: the curator had confirmed it, and the learner moves it; for a
class's own bound, also an image moved into that class that the learner would not keep there). An
unchecked image changes label only where the learner is at least as sure as the cut-off at which the helpful
outweigh the harmful by more than their noise (`choose_cutoff`); with no such cut-off nothing changes. A
class nobody checked keeps its members (the learner knows nothing of it; they come first in the review
queue); checked images never change.

Measured on the curator-effort suite (`benchmarks/short_pass.py`, benchmarks/README.md "Propagation that
never makes labels worse"): the plain probe, which re-labelled every unchecked image of a checked class,
lowered the labels' accuracy by more than a point in many short passes (every queue pass on grey_textures,
where the clusters were perfect: −64 points); thresholds on the probe's own probability could not tell a
probe fitted on 15 images from one fitted on 500, and per-class error bounds from a handful of held-out
images blocked every fix a short pass had taught.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from turtle_core.discovery.probe import FeatureProbe, LinearProbe, softmax
from turtle_core.discovery.runtime import cpu_threads

__all__ = ["FeatureProbe", "HeldOut", "LinearProbe", "RefineResult", "fit_learner", "refine_labels"]

HELD_OUT_FOLDS = 5
# Up to this many checked images each is held out on its own (leave-one-out): with a short pass's 3 fixes in
# a class, 5 folds often hold two of them out together and the learner, left with one, cannot vouch for them.
LEAVE_ONE_OUT_UP_TO = 40
# The learner's sureness (its probability of the new label) a change needs: one of these, chosen by the
# held-out evidence (`choose_cutoff`).
CUTOFFS = (0.0, 0.5, 0.7, 0.9, 0.97, 0.99)
# From this sureness up, a class's harm bound may rest on every class's right labels, where that bound is the
# tighter one. A class's own right labels are few (a dozen after a few rounds of the review queue), and the
# bound on a rate with no harm seen among 12 is still 0.18, so disputes the learner is sure of were never
# moved; at this sureness its harm rate varies little from class to class. Below it, pooling moved the
# members of mixed clusters on a few checks each (benchmarks/README.md, "Propagation that never makes labels
# worse": 0.5 doubled the short passes that got worse on emoji, 0.0 made 70 % of one kind worse).
POOLED_FROM = 0.7
# One-sided z of the bounds on the held-out rates (the harm rate's upper bound, the fix rate's lower bound), and
# how many of the curator's fixes the held-out learner must have made at least.
BOUND_Z = 1.64
MIN_HELPFUL = 3


@dataclass(frozen=True)
class HeldOut:
    """Each checked image predicted by the learner fitted without it (k-fold): `predicted` (a class
    position, −1 when its class had no other checked image), `sureness` (the probability of that
    prediction), `right` (it is the curator's label), `helpful` (the curator had moved it, and the learner
    finds its new label), `harmful` (the curator had confirmed it, and the learner moves it), `changes` (the
    learner moves it off the label it had before the curator checked it), `moved` (the curator had moved it),
    `found` (the learner could predict it: its class had other checked images), `origin` (its class before the
    curator checked it), `label` (its class now: the curator's)."""

    predicted: np.ndarray
    sureness: np.ndarray
    right: np.ndarray
    helpful: np.ndarray
    harmful: np.ndarray
    changes: np.ndarray
    moved: np.ndarray
    found: np.ndarray
    origin: np.ndarray
    label: np.ndarray

    @property
    def accuracy(self) -> float | None:
        """Share of checked images the held-out learner labels as the curator did."""
        return None if self.right.size == 0 else float(self.right.mean())


@dataclass
class RefineResult:
    """New label per row (checked rows unchanged), its review confidence (1.0 on checked rows, 0 in classes
    nobody checked), the learner's probabilities over `classes` (the sorted distinct input labels; 0 for
    classes nobody checked), which rows the learner `scored` (unchecked rows of checked classes), the cut-off
    a change needed (None: no change was safe), the held-out evidence, and the learner itself."""

    labels: np.ndarray
    confidence: np.ndarray
    probabilities: np.ndarray
    classes: np.ndarray
    scored: np.ndarray
    cutoff: float | None
    held_out: HeldOut | None
    learner: LinearProbe | None

    def changed(self, labels: np.ndarray) -> np.ndarray:
        """Rows whose label differs from `labels`."""
        return np.asarray(labels) != self.labels

    @property
    def n_learned(self) -> int:
        return 0 if self.learner is None else self.learner.n_classes


def fit_learner(
    spaces: Sequence[np.ndarray | torch.Tensor] | FeatureProbe,
    labels: np.ndarray | Sequence[int],
    checked: np.ndarray | Sequence[bool],
    *,
    num_threads: int | None = None,
) -> LinearProbe | None:
    """The learner "Propagate my fixes" uses: a linear probe fitted on the `checked` rows over the labels they
    carry (its `classes`); None when the checked rows carry fewer than two labels. Score any images with
    its `predict_proba(spaces)` (the same backbones' features)."""
    probe = spaces if isinstance(spaces, FeatureProbe) else FeatureProbe(spaces)
    labels, checked = _check_rows(probe, labels, checked)
    rows = np.flatnonzero(checked)
    classes, targets = np.unique(labels[rows], return_inverse=True)
    if classes.size < 2:
        return None
    with cpu_threads(num_threads, torch.device("cpu")):
        return probe.fit(rows, targets, classes)


def held_out(probe: FeatureProbe, labels: np.ndarray, checked: np.ndarray, origin: np.ndarray) -> HeldOut:
    """What the learner would have done to each checked image had it been left unchecked (k-fold over the
    checked images; `labels` and `origin` as class positions)."""
    rows = np.flatnonzero(checked)
    targets = labels[rows]
    predicted = np.full(rows.size, -1)
    sureness = np.ones(rows.size, np.float32)
    folds = rows.size if rows.size <= LEAVE_ONE_OUT_UP_TO else HELD_OUT_FOLDS
    order = np.random.default_rng(0).permutation(rows.size)
    for fold in (order[i::folds] for i in range(folds)):
        train = np.setdiff1d(np.arange(rows.size), fold)
        present = np.unique(targets[train])
        if present.size < 2:
            continue
        learner = probe.fit(rows[train], np.searchsorted(present, targets[train]), present)
        scores = softmax(learner.logits(probe.arrays, probe.rows[rows[fold]]))
        predicted[fold] = present[scores.argmax(1)]
        sureness[fold] = scores.max(1)
    was_moved = origin[rows] != targets
    found = predicted >= 0
    return HeldOut(
        predicted,
        sureness,
        predicted == targets,
        was_moved & (predicted == targets),
        ~was_moved & found & (predicted != targets),
        found & (predicted != origin[rows]),
        was_moved,
        found,
        origin[rows],
        targets,
    )


def choose_cutoff(
    evidence: HeldOut,
    unchecked_changes: Sequence[float],
    cutoffs: Sequence[float] = CUTOFFS,
    source: int | None = None,
) -> float | None:
    """The sureness a change needs, or None when no cut-off is safe.

    The checked images are not a fair sample of the unchecked ones (the curator looked at the least sure, and
    moved the wrong ones), so their counts are not compared directly. They give two rates, each bounded
    against its noise: how often the learner, trained without an image, moves a *right* label off (`harm`,
    upper bound over the confirmed images) and how often it finds the right label of a *wrong* one (`fix`,
    lower bound over the moved images). How many unchecked images the learner would move (`unchecked_changes`)
    then tells how many of them are wrong: no more than the share beyond what `harm` alone would move. A
    cut-off is safe where the expected fixes among those moves outweigh the expected harm at these bounds;
    among safe cut-offs, the one with the largest expected gain. With `source`, for the unchecked images of
    that class: the harm is bounded over that class's own right labels only (a class whose members nobody
    confirmed is not vouched for by the others'): its confirmed images, and the images the curator moved
    into it, which the learner must keep there too (they came from other clusters, so it loses them more
    often than typical members: they make the bound no looser than it is, only surer). From `POOLED_FROM` up,
    the bound over every class's right labels serves where it is the tighter one."""
    moved = evidence.moved
    confirmed, vouching, harmful = _vouching(evidence, source)
    if source is not None:  # every class's right labels, for the sure cut-offs
        _, pooled_vouching, pooled_harmful = _vouching(evidence, None, moved_in=True)
    n_moved, n_confirmed, n_vouching = int(moved.sum()), int(confirmed.sum()), int(vouching.sum())
    best, chosen = 0.0, None
    for cutoff, share in zip(cutoffs, unchecked_changes, strict=True):
        sure = evidence.sureness >= cutoff
        helpful = int((evidence.helpful & sure).sum())
        if helpful < MIN_HELPFUL or n_confirmed == 0:
            continue
        harm = wilson_upper(int((harmful & sure).sum()), n_vouching, BOUND_Z)
        if source is not None and cutoff >= POOLED_FROM:
            pooled = wilson_upper(int((pooled_harmful & sure).sum()), int(pooled_vouching.sum()), BOUND_Z)
            harm = min(harm, pooled)
        fix = wilson_lower(helpful, n_moved, BOUND_Z)
        moves_wrong = (
            float((evidence.changes & moved & sure).sum()) / n_moved
        )  # the learner moves a wrong label
        if moves_wrong <= harm:
            continue
        wrong = min(1.0, max(0.0, (share - harm) / (moves_wrong - harm)))  # unchecked labels that are wrong
        gain = wrong * fix - (1.0 - wrong) * harm  # per scored image
        if gain > best:
            best, chosen = gain, float(cutoff)
    return chosen


def _vouching(
    evidence: HeldOut, source: int | None, moved_in: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confirmed, vouching, harmful) held-out images: the confirmed ones, the right labels that vouch for the
    learner (with `source`, that class's confirmed images and the images moved into it; with `moved_in`, every
    class's), and which of those the learner would have lost."""
    moved = evidence.moved
    confirmed = ~moved & evidence.found
    harmful = evidence.harmful
    if source is not None:
        confirmed, harmful = confirmed & (evidence.origin == source), harmful & (evidence.origin == source)
    if source is None and not moved_in:
        return confirmed, confirmed, harmful
    into = moved & evidence.found
    if source is not None:
        into &= evidence.label == source
    return confirmed, confirmed | into, harmful | (into & ~evidence.right)


def class_cutoffs(
    evidence: HeldOut,
    labels: np.ndarray,
    scored: np.ndarray,
    disputed: np.ndarray,
    sureness: np.ndarray,
    n_classes: int,
) -> np.ndarray:
    """Per class (a position), the sureness a change of its unchecked members needs (`choose_cutoff` with
    that class as `source`); NaN where no change is safe. `disputed`: the learner's choice is another class."""
    needed = np.full(n_classes, np.nan)
    for source in np.unique(labels[scored]):
        members = scored & (labels == source)
        share = [float((disputed & members & (sureness >= c)).sum()) / int(members.sum()) for c in CUTOFFS]
        chosen = choose_cutoff(evidence, share, CUTOFFS, int(source))
        if chosen is not None:
            needed[source] = chosen
    return needed


def wilson_lower(successes: int, trials: int, z: float) -> float:
    """One-sided Wilson lower bound of a proportion."""
    return 0.0 if trials == 0 else 1.0 - wilson_upper(trials - successes, trials, z)


def wilson_upper(successes: int, trials: int, z: float) -> float:
    """One-sided Wilson upper bound of a proportion."""
    if trials == 0:
        return 1.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return min(1.0, (centre + spread) / (1 + z * z / trials))


def refine_labels(
    spaces: Sequence[np.ndarray | torch.Tensor] | FeatureProbe,
    labels: np.ndarray | Sequence[int],
    checked: np.ndarray | Sequence[bool],
    *,
    origin: np.ndarray | Sequence[int] | None = None,
    random_state: int = 0,
    num_threads: int | None = None,
) -> RefineResult:
    """Re-label the rows that are not `checked` where the checked rows' `labels` (any integers) show it is safe.

    `origin`: each row's label before the curator checked it (read on checked rows: where it differs from
    `labels` the curator moved the image). Default: `labels`, i.e. every checked label was right as it was;
    then nothing shows that the learner fixes anything, and nothing changes.
    `spaces` are the images' feature matrices (or a prepared `FeatureProbe`, to reuse across rounds).
    Deterministic; `random_state` is accepted for a uniform estimator interface.
    """
    del random_state
    probe = spaces if isinstance(spaces, FeatureProbe) else FeatureProbe(spaces)
    labels, checked = _check_rows(probe, labels, checked)
    origin = labels if origin is None else np.asarray(origin).ravel()
    if origin.shape != labels.shape:
        raise ValueError(f"origin ({origin.shape[0]}) needs one entry per row ({labels.size})")
    classes, codes = np.unique(np.concatenate([labels, origin]), return_inverse=True)
    inverse, origin_code = codes[: labels.size], codes[labels.size :]
    learned_class = np.bincount(inverse[checked], minlength=classes.size) > 0
    scored = ~checked & learned_class[inverse]
    probabilities = np.zeros((labels.size, classes.size), np.float32)
    new = inverse.copy()
    cutoff, evidence, learner = None, None, None
    with cpu_threads(num_threads, torch.device("cpu")):
        if learned_class.sum() >= 2:
            learner = fit_learner(probe, inverse, checked)
            assert learner is not None
            probabilities[:, learner.classes] = softmax(probe.logits(learner))
            if (origin_code[checked] != inverse[checked]).any():
                evidence = held_out(probe, inverse, checked, origin_code)
    top, sureness = probabilities.argmax(1), probabilities.max(1)
    if evidence is not None:
        needed = class_cutoffs(evidence, inverse, scored, top != inverse, sureness, classes.size)
        change = scored & (top != inverse) & (sureness >= needed[inverse])  # NaN: never
        new[change] = top[change]
        cutoff = None if np.isnan(needed).all() else float(np.nanmin(needed))
    if learner is not None:
        learner = LinearProbe(
            learner.means, learner.scales, learner.weights, learner.bias, classes[learner.classes]
        )
    present = np.isin(np.arange(classes.size), inverse)  # the labels' classes (origin may name others)
    return RefineResult(
        classes[new],
        _confidence(probabilities, new, checked, scored),
        probabilities[:, present],
        classes[present],
        scored,
        cutoff,
        evidence,
        learner,
    )


def _confidence(
    probabilities: np.ndarray, new: np.ndarray, checked: np.ndarray, scored: np.ndarray
) -> np.ndarray:
    """How sure the learner is of the label each row ends with: (1 + its probability − the likeliest other
    class's) / 2, so a label the learner disputes but the evidence kept is below 0.5 and comes early in the
    review queue, graded (no ties). Checked rows 1; rows the learner did not score (classes nobody checked)
    0, first in the queue: a class nobody checked is where the next checks teach the most."""
    rows = np.arange(new.size)
    own = probabilities[rows, new]
    others = probabilities.copy()
    others[rows, new] = -np.inf
    confidence = np.where(scored, (1.0 + own - others.max(1)) / 2.0, 0.0).astype(np.float32)
    confidence[checked] = 1.0
    return confidence


def _check_rows(
    probe: FeatureProbe, labels: np.ndarray | Sequence[int], checked: np.ndarray | Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    checked = np.asarray(checked, dtype=bool).ravel()
    if labels.shape[0] != probe.n_rows or checked.shape[0] != probe.n_rows:
        raise ValueError(
            f"labels ({labels.shape[0]}) and checked ({checked.shape[0]}) need one entry per row ({probe.n_rows})"
        )
    return labels, checked
