"""The picture of domain adaptation: source and target test images in one 2-D map, coloured by domain,
for a run and its source-only baseline ("before / after adaptation"), with a figure of how much the two
kinds of images overlap.

The features are those adaptation lines up: the adaptation layer's activations (the head's hidden
layer), else the pooled backbone features (core.engine.interpret.feature_model). The map is a PCA of
both domains' features together. The overlap figure is the accuracy of a domain classifier (logistic
regression, cross-validated) telling source from target on the features: 50% means the two kinds
cannot be told apart, 100% that they are fully separate. The centroid distance ratio (distance
between the two domains' centres over the spread within them) is kept beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.data import tfdata
from core.engine import evaluation, interpret
from core.errors import DatasetError
from core.store import datasets, runs
from core.store.files import read_json, write_json

MAP_FILE = "domain_map.json"
MAX_PER_DOMAIN = 300
# A difference in domain-classifier accuracy smaller than this is read as "about the same overlap".
SAME_OVERLAP = 0.02


def _items(run_dir: Path, max_per_domain: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]], str, dict[str, Any]]:
    """(source test images, target images, which target part, the run's split.json["target"])."""
    if not (run_dir / "split.json").is_file():
        raise DatasetError(f"Run '{run_dir.name}' has no split.json, so its test images are not known.")
    split = read_json(run_dir / "split.json")
    target = split.get("target")
    if not target:
        raise DatasetError(f"Run '{run_dir.name}' has no target dataset, so there are no two kinds of images to map.")
    config = runs.load_config(run_dir)
    rng = np.random.default_rng([config.seed, 2024])

    def sample(items: list[tuple[str, int]]) -> list[tuple[str, int]]:
        if len(items) <= max_per_domain:
            return items
        return [items[i] for i in sorted(rng.permutation(len(items))[:max_per_domain])]

    source = sample([(rel, int(label)) for rel, label in split["test"]])
    # Labelled target images held out from training when there are some; else the unlabelled adapting ones.
    part = "test" if target.get("test") else "adapt"
    tgt = [(rel, int(label)) for rel, label in target["test"]] if part == "test" else [(rel, 0) for rel in target["adapt"]]
    return source, sample(tgt), part, target


def adaptation_features(model: Any) -> tuple[Any, str]:
    """The model up to the features adaptation lines up, and what they are called in a sentence."""
    import tf_keras as keras

    names = [layer.name for layer in model.layers]
    if "hidden" in names:
        return keras.Model(model.inputs, model.get_layer("hidden").output), "the adaptation layer"
    return interpret.feature_model(model), "the backbone's features"


def overlap(features: np.ndarray, is_target: np.ndarray, seed: int) -> dict[str, float]:
    """How well a domain classifier separates the two kinds (cross-validated accuracy) and the centroid ratio."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = int(min(is_target.sum(), (~is_target).sum()))
    folds = min(5, smallest)
    if folds < 2:
        raise DatasetError("The map needs at least 2 images of each kind (source and target).")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    accuracy = float(np.mean(cross_val_score(clf, features, is_target, cv=cv, scoring="balanced_accuracy")))
    src, tgt = features[~is_target], features[is_target]
    spread = np.sqrt((np.sum((src - src.mean(0)) ** 2) + np.sum((tgt - tgt.mean(0)) ** 2)) / len(features))
    ratio = float(np.linalg.norm(src.mean(0) - tgt.mean(0)) / max(spread, 1e-12))
    return {"domain_accuracy": round(accuracy, 4), "centroid_ratio": round(ratio, 4)}


def compute_domain_map(run_dir: Path, model: Any = None, max_per_domain: int = MAX_PER_DOMAIN) -> dict[str, Any]:
    """Source and target test images in 2-D (PCA) with their overlap figures; cached as domain_map.json."""
    from sklearn.decomposition import PCA

    config = runs.load_config(run_dir)
    ws = run_dir.parent.parent
    source, target_items, part, target = _items(run_dir, max_per_domain)
    src_root, tgt_root = datasets.dataset_path(config.dataset_id, ws), datasets.dataset_path(target["dataset_id"], ws)
    source = [item for item in source if (src_root / item[0]).is_file()]
    target_items = [item for item in target_items if (tgt_root / item[0]).is_file()]
    if model is None:
        model = evaluation.load_model(run_dir)
    front, layer = adaptation_features(model)

    def feats(root: Path, items: list[tuple[str, int]]) -> np.ndarray:
        ds = tfdata.pipeline(root, items, config.image_size, tfdata.INFERENCE_BATCH, False, config.seed)
        return front.predict(ds.map(lambda x, y: x), verbose=0).reshape(len(items), -1)

    if len(source) < 2 or len(target_items) < 2:
        raise DatasetError("The map needs at least 2 images of each kind (source and target) still on disk.")
    features = np.concatenate([feats(src_root, source), feats(tgt_root, target_items)]).astype(np.float64)
    is_target = np.array([False] * len(source) + [True] * len(target_items))
    points = PCA(n_components=2, random_state=config.seed).fit_transform(features)
    out = {
        "run": run_dir.name, "layer": layer, "target_part": part, "target_dataset_id": target["dataset_id"],
        "n_source": len(source), "n_target": len(target_items),
        "points": [[round(float(x), 5), round(float(y), 5)] for x, y in points],
        "domains": ["target" if t else "source" for t in is_target],
        "files": [rel for rel, _ in source] + [rel for rel, _ in target_items],
        **overlap(features, is_target, config.seed),
    }
    write_json(run_dir / MAP_FILE, out)
    return out


def load_domain_map(run_dir: Path) -> dict[str, Any] | None:
    """The cached map of a run (None if not computed yet)."""
    path = run_dir / MAP_FILE
    return read_json(path) if path.is_file() else None


def baseline_of(run_dir: Path) -> Path | None:
    """The folder of a run's source-only baseline (compare_source_only) when it has a trained model."""
    name = runs.read_status(run_dir).get("source_only_run")
    path = run_dir.parent / name if name else None
    return path if path is not None and (path / "model.keras").is_file() else None


def before_after(run_dir: Path, model: Any = None) -> dict[str, Any]:
    """The maps of a run ("after") and of its source-only baseline ("before", None without one), and the sentence.

    Maps already computed are read from their runs' folders; the others are computed and kept.
    """
    after = load_domain_map(run_dir) or compute_domain_map(run_dir, model=model)
    baseline = baseline_of(run_dir)
    before = (load_domain_map(baseline) or compute_domain_map(baseline)) if baseline else None
    status = runs.read_status(run_dir)
    measured = (status.get("source_only_target_accuracy"), status.get("target_accuracy"))
    return {"after": after, "before": before, "reading": reading(after, before, measured)}


def reading(after: dict[str, Any], before: dict[str, Any] | None = None,
            accuracy: tuple[float | None, float | None] | None = None) -> str:
    """One sentence a non-programmer reads at once, from the overlap figures (not fixed text).

    `accuracy` is the target-domain accuracy (without adaptation, with it) when both were measured: the sentence
    then agrees with them, since what counts is the accuracy; the map only shows how alike the features look.
    """
    told = f"a classifier tells the two kinds of images apart {after['domain_accuracy']:.0%} of the time"
    if before is None:
        how = ("they overlap almost completely" if after["domain_accuracy"] < 0.6 else
               "they still sit apart" if after["domain_accuracy"] > 0.85 else "they partly overlap")
        return f"In this model's features, {told} (50% means they cannot be told apart): {how}."
    gap = before["domain_accuracy"] - after["domain_accuracy"]
    overlap = "more" if gap > SAME_OVERLAP else "less" if gap < -SAME_OVERLAP else "same"
    lead = (f"After adaptation {told}, against {before['domain_accuracy']:.0%} without it (50% means they cannot be "
            "told apart)")
    words = {"more": "the two kinds of images now overlap more", "less": "the two kinds of images overlap less than before",
             "same": "the two kinds of images overlap about as much as before"}[overlap]
    without, with_ = accuracy or (None, None)
    if without is None or with_ is None:
        tail = {"more": ", so adaptation lined them up", "less": ", so adaptation did not line them up",
                "same": ""}[overlap]
        return f"{lead}: {words}{tail}."
    figures = f"the accuracy on them went from {without:.1%} without adaptation to {with_:.1%} with it"
    if with_ - without > 0.01:
        join = "and" if overlap == "more" else "yet"
        return f"{lead}: {words}, {join} {figures}, so adaptation helped where it counts."
    join = "but" if overlap == "more" else "and"
    return f"{lead}: {words}, {join} {figures}, so adaptation did not help here."
