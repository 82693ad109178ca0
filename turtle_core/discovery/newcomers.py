"""Images that join a curated folder after its curation: which curated category each one belongs to, and
whether it fits any of them at all.

The "fits no category" test measures the image's distance to its category's centre (in the joint space of
L2-normalised backbone features, as `confidence.atypicality` does) against that category's own members: in
units of the distance from their median to their 99th percentile. An image more than `BEYOND_MEMBERS` such
units out lies well past nearly every member and is not forced into the category. A robust z-score over the
members (atypicality's) put 17 of 300 held-out images of a 3-texture folder outside their category
(`python -m benchmarks labels_in_out`): the members' distances have heavy tails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from turtle_core.discovery.features import joint_unit_rows, squared_distances
from turtle_core.discovery.groups import group_means
from turtle_core.discovery.probe import FeatureProbe, LinearProbe
from turtle_core.discovery.sampled import chunks

# Centres and spreads are measured on at most this many of the curated images.
REFERENCE_ROWS = 50_000
# How far past the members' extent (their median-to-99th-percentile distance) an image fits none.
BEYOND_MEMBERS = 2.0


def reference_sample(n_rows: int, size: int = REFERENCE_ROWS, seed: int = 0) -> np.ndarray:
    """Sorted ids of a fixed random sample of `size` of `n_rows` rows (all when there are fewer)."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=size, replace=False))


class CategoryShapes:
    """Each curated category's centre and how far its members lie from it (median and 99th percentile)."""

    def __init__(self, spaces: Sequence[np.ndarray], labels: np.ndarray) -> None:
        labels = np.asarray(labels)
        Z = joint_unit_rows(spaces)
        self.classes, inverse = np.unique(labels, return_inverse=True)
        self.centres = group_means(Z, inverse, self.classes.size)
        own = np.sqrt(squared_distances(Z, self.centres)[np.arange(Z.shape[0]), inverse])
        self.median = np.zeros(self.classes.size)
        self.spread = np.ones(self.classes.size)
        for index in range(self.classes.size):
            median, tail = np.percentile(own[inverse == index], [50, 99])
            self.median[index] = median
            self.spread[index] = max(float(tail - median), 1e-6)

    def scores(self, spaces: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
        """How far each row lies from the centre of its category `labels` (one of `classes`): 0 at the members'
        median distance, 1 at their 99th percentile; chunked, nothing the size of `spaces` is copied."""
        labels = np.asarray(labels)
        index = np.searchsorted(self.classes, labels)
        if labels.size and not np.array_equal(self.classes[np.clip(index, 0, self.classes.size - 1)], labels):
            raise ValueError("every label must be one of the categories the shapes were measured on")
        out = np.empty(labels.size, np.float32)
        for block in chunks(labels.size):
            Z = joint_unit_rows([np.asarray(X[block]) for X in spaces])
            offset = Z - self.centres[index[block]]
            distance = np.sqrt(np.einsum("ij,ij->i", offset, offset))
            out[block] = (distance - self.median[index[block]]) / self.spread[index[block]]
        return out

    def fits_none(self, spaces: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
        """Rows too far from their category's typical members to belong to it."""
        return self.scores(spaces, labels) > BEYOND_MEMBERS


# The learner is trained on at most this many of the curated images: every checked one first, then a fixed
# random sample of the rest (a linear probe's accuracy stops growing long before; its fit stays seconds).
TRAIN_ROWS = 20_000


def training_rows(
    labels: np.ndarray, checked: np.ndarray, limit: int = TRAIN_ROWS, seed: int = 0
) -> np.ndarray:
    """Sorted rows to learn the curated categories from: the checked images (excluded ones left out), then
    other labelled images drawn at random, `limit` in all."""
    labels, checked = np.asarray(labels), np.asarray(checked, bool)
    usable = labels >= 0
    first = np.flatnonzero(usable & checked)
    rest = np.flatnonzero(usable & ~checked)
    rng = np.random.default_rng(seed)
    if first.size >= limit:
        return np.sort(rng.choice(first, size=limit, replace=False))
    room = min(rest.size, limit - first.size)
    return np.sort(np.concatenate([first, rng.choice(rest, size=room, replace=False)]))


def learn_categories(spaces: Sequence[np.ndarray], labels: np.ndarray, checked: np.ndarray) -> LinearProbe:
    """The curated categories as a `LinearProbe` (the learner "Propagate my fixes" uses): trained on the
    curation's labels (`labels`, -1 for excluded images) of `training_rows`."""
    rows = training_rows(labels, checked)
    classes, targets = np.unique(np.asarray(labels)[rows], return_inverse=True)
    if classes.size < 2:
        raise ValueError("at least two curated categories are needed to label new images")
    return FeatureProbe(spaces, rows=rows).fit(np.arange(rows.size), targets, classes)
