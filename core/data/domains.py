"""The target domain of a run: which of a second dataset's images adapt the model (without labels) and
which measure it (a held-out test part, never trained on).

The split of the target never reads its labels: its labelled images are ordered by path and
permuted with the run's seed, so changing the target's labels changes nothing that trains (only
target_labeled_per_class > 0 reads them, to pick that many labelled images per class).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import DatasetError

# The share of the target's labelled images held out to measure accuracy on the target domain;
# larger than a usual test split, since this number is what adaptation is judged by.
TARGET_TEST_FRACTION = 0.3
MIN_TARGET_IMAGES = 20


def shared_classes(source_classes: list[str], target_classes: list[str]) -> dict[str, int]:
    """Target class name -> the source's class index, for names the two share (case and spaces ignored)."""
    index = {c.strip().lower(): i for i, c in enumerate(source_classes)}
    return {c: index[c.strip().lower()] for c in target_classes if c.strip().lower() in index}


def check_target(source: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """Refuse, in a sentence, a target that cannot adapt a run; return sentences about how its labels are used."""
    if target["id"] == source["id"]:
        raise DatasetError("The target dataset is the training dataset itself; choose images from where the model "
                           "will be used (another dataset).")
    total = sum(target["counts"].values()) + len(target.get("unlabeled", []))
    if total < MIN_TARGET_IMAGES:
        raise DatasetError(f"The target dataset '{target['name']}' has {total} image(s); domain adaptation needs at "
                           f"least {MIN_TARGET_IMAGES} images from where the model will be used (a few hundred is best).")
    shared = shared_classes(source["classes"], target["classes"])
    if not target["classes"]:
        return [unlabelled_sentence(target)]
    if not shared:
        return [f"The target dataset's classes ({', '.join(target['classes'])}) share no name with the training "
                f"dataset's ({', '.join(source['classes'])}), so its labels are ignored: all its images adapt the "
                "model as unlabelled images and no accuracy on the target domain is measured."]
    others = [c for c in target["classes"] if c not in shared]
    if others:
        return [f"The target classes {', '.join(others)} are not classes of the training dataset; their images adapt "
                "the model as unlabelled images."]
    return []


def unlabelled_sentence(target: dict[str, Any]) -> str:
    """What a run does with a target that has no labels at all."""
    n = len(target.get("unlabeled", []))
    return (f"The target dataset '{target['name']}' has no labels: its {n} images adapt the model without labels, "
            "and no accuracy on the target domain is measured (add class folders named like the training classes "
            "to measure it).")


def target_split(source: dict[str, Any], target: dict[str, Any], seed: int, labeled_per_class: int = 0) -> dict[str, Any]:
    """The target's parts: `adapt` (paths, used without labels), `test` and `labeled` ((path, source class index))."""
    notices = check_target(source, target)
    shared = shared_classes(source["classes"], target["classes"])
    labeled = sorted((rel, shared[c]) for c in shared for rel in target["images"][c])
    unlabeled = sorted([rel for c in target["classes"] if c not in shared for rel in target["images"][c]]
                       + list(target.get("unlabeled", [])))
    paths = [rel for rel, _ in labeled]
    order = np.random.default_rng([seed, 1013]).permutation(len(paths))
    n_test = round(len(paths) * TARGET_TEST_FRACTION) if len(paths) >= 2 else 0
    test_paths = {paths[i] for i in order[:n_test]}
    rest = [labeled[i] for i in order[n_test:]]
    picked: list[tuple[str, int]] = []
    if labeled_per_class:
        per: dict[int, int] = {}
        for rel, label in rest:  # in the seeded order: the same picks for the same seed
            if per.get(label, 0) < labeled_per_class:
                picked.append((rel, label))
                per[label] = per.get(label, 0) + 1
        if not target["classes"]:
            notices.append("target_labeled_per_class has no effect: the target has no labels.")
        elif not shared:
            notices.append("target_labeled_per_class has no effect: the target's classes share no name with the "
                           "training dataset's.")
    adapt = sorted([rel for rel, _ in rest] + unlabeled)
    if len(adapt) < MIN_TARGET_IMAGES // 2:
        raise DatasetError(f"After holding out its test images, the target dataset '{target['name']}' keeps "
                           f"{len(adapt)} images to adapt with; add more images from where the model will be used.")
    return {
        "dataset_id": target["id"],
        "shared_classes": sorted(shared, key=shared.get),
        "adapt": adapt,
        "test": sorted((rel, label) for rel, label in labeled if rel in test_paths),
        "labeled": sorted(picked),
        "notices": notices,
    }
