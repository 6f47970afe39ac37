"""The train/validation/test split: stratified and the same for the same seed, or the one the
dataset came with (train/, val/, test/ folders), with a missing part drawn from the training images."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import DatasetError
from core.spec import kinds as spec_kinds
from core.spec.config import RunConfig

PARTS = ("train", "val", "test")


def split(info: dict[str, Any], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
    """A stratified train/val/test split of (relative path, class index), the same for the same seed.

    A dataset imported with train/val/test folders keeps that split; a part it lacks is drawn from
    its training images with the given fraction.
    """
    if info.get("predefined_split"):
        return _predefined_split(info, val_fraction, test_fraction, seed)
    parts: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    too_few = [c for c in info["classes"] if len(info["images"][c]) < 3]
    if too_few:
        items = spec_kinds.of(info).items
        raise DatasetError(
            f"Class '{too_few[0]}' has fewer than 3 {items}, too few to split into training, validation and test {items}."
        )
    for index, label in enumerate(info["classes"]):
        files = sorted(info["images"][label])
        order = np.random.default_rng([seed, index]).permutation(len(files))
        n = len(files)
        n_test = max(1, round(n * test_fraction))
        n_val = max(1, round(n * val_fraction))
        chosen = [files[i] for i in order]
        parts["test"] += [(f, index) for f in chosen[:n_test]]
        parts["val"] += [(f, index) for f in chosen[n_test : n_test + n_val]]
        parts["train"] += [(f, index) for f in chosen[n_test + n_val :]]
    return parts


def _predefined_split(info: dict[str, Any], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
    index_of = {rel: i for i, label in enumerate(info["classes"]) for rel in info["images"][label]}
    given = info["predefined_split"]
    parts = {p: sorted((rel, index_of[rel]) for rel in given.get(p, []) if rel in index_of) for p in PARTS}
    for offset, (part, fraction) in enumerate((("test", test_fraction), ("val", val_fraction))):
        if parts[part]:
            continue
        kept: list[tuple[str, int]] = []
        for index in range(len(info["classes"])):
            files = [item for item in parts["train"] if item[1] == index]
            order = np.random.default_rng([seed, index, 1 + offset]).permutation(len(files))
            # Leave a class its only images rather than emptying its training part.
            n = max(1, round(len(files) * fraction)) if len(files) >= 3 else 0
            chosen = [files[i] for i in order]
            parts[part] += chosen[:n]
            kept += chosen[n:]
        parts["train"] = sorted(kept)
    return parts


def train_counts(info: dict[str, Any], val_fraction: float = RunConfig.val_fraction,
                 test_fraction: float = RunConfig.test_fraction, seed: int = RunConfig.seed) -> dict[str, int]:
    """How many images of each class a run trains on (what the recommender counts): a predefined split's
    training images less any drawn from them for validation; the whole count when a class is too small to split."""
    try:
        parts = split(info, val_fraction, test_fraction, seed)
    except DatasetError:
        return dict(info["counts"])
    counts = {label: 0 for label in info["classes"]}
    for _, index in parts["train"]:
        counts[info["classes"][index]] += 1
    return counts
