"""Evaluation on the run's held-out test split (scikit-learn metrics) and prediction on new images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

from core import datasets, runs
from core.errors import DatasetError, RunStateError


def metrics_from_predictions(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class and averaged precision/recall/F1, and the confusion matrix."""
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro": {k: float(report["macro avg"][k]) for k in ("precision", "recall", "f1-score")},
        "weighted": {k: float(report["weighted avg"][k]) for k in ("precision", "recall", "f1-score")},
        "per_class": [
            {
                "class": name,
                "precision": float(report[name]["precision"]),
                "recall": float(report[name]["recall"]),
                "f1": float(report[name]["f1-score"]),
                "support": int(report[name]["support"]),
            }
            for name in classes
        ],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def evaluate(run_dir: Path, model: Any = None) -> dict[str, Any]:
    """Predict the run's test split, compute metrics, and write eval.json (predictions kept)."""
    from core import modeling

    config = runs.load_config(run_dir)
    if not (run_dir / "split.json").is_file():
        raise RunStateError(f"Run '{run_dir.name}' has not been trained yet, so there is nothing to evaluate.")
    split = runs.read_json(run_dir / "split.json")
    if model is None:
        if not (run_dir / "model.keras").is_file():
            raise RunStateError(f"Run '{run_dir.name}' has no saved model; train it first.")
        model = modeling.load(run_dir / "model.keras")
    ws = run_dir.parent.parent
    root = datasets.dataset_path(config.dataset_id, ws)
    test = [tuple(item) for item in split["test"]]
    if not test:
        raise DatasetError("The test split is empty; raise the test fraction or add images.")
    ds = datasets.pipeline(root, test, config.image_size, config.batch_size, False, config.seed)
    started = time.monotonic()
    probs = model.predict(ds, verbose=0)
    seconds = time.monotonic() - started
    y_true = np.array([label for _, label in test])
    classes = split["classes"]
    report = {
        "split": "test",
        "n": len(test),
        "classes": classes,
        **metrics_from_predictions(y_true, probs, classes),
        "ms_per_image": round(1000 * seconds / len(test), 3),
        "predictions": [
            {"file": rel, "true": int(t), "pred": int(p.argmax()), "probs": [round(float(v), 6) for v in p]}
            for (rel, _), t, p in zip(test, y_true, probs)
        ],
    }
    runs.write_json(run_dir / "eval.json", report)
    return report


def predict(run_dir: Path, images: list[tuple[str, bytes]], top_k: int = 3) -> list[dict[str, Any]]:
    """Class probabilities for new images, given as (name, file bytes); unreadable files say why."""
    if not (run_dir / "model.keras").is_file():
        state = runs.read_status(run_dir).get("state")
        raise RunStateError(f"Run '{run_dir.name}' has no trained model yet (state: {state}).")
    from core import modeling

    config = runs.load_config(run_dir)
    classes = runs.read_json(run_dir / "split.json")["classes"]
    model = modeling.load(run_dir / "model.keras")
    results: list[dict[str, Any]] = []
    arrays, slots = [], []
    for name, data in images:
        try:
            arrays.append(datasets.load_image_array(data, config.image_size))
            slots.append(len(results))
            results.append({"file": name})
        except DatasetError as exc:
            results.append({"file": name, "error": f"'{name}' was skipped: {exc}."})
    if arrays:
        probs = model.predict(np.stack(arrays), verbose=0)
        for slot, p in zip(slots, probs):
            order = np.argsort(p)[::-1][:top_k]
            results[slot]["prediction"] = classes[int(order[0])]
            results[slot]["top"] = [{"class": classes[int(i)], "probability": round(float(p[i]), 6)} for i in order]
    return results
