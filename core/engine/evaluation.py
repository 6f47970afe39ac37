"""Evaluation on the run's held-out test split (scikit-learn metrics) and prediction on new images.

Everything the Predictions page shows about a finished run is derived from the predictions kept in
eval.json (report()), so the page opens without TensorFlow and an eval.json written by an older
version gains the newer views too. TensorFlow is imported only by evaluate() and predict().
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, roc_auc_score, roc_curve

from core.data import archives, tfdata
from core.data.limits import ImportLimits
from core.engine import inputs as model_inputs
from core.engine import modeling
from core.errors import DatasetError, RunStateError
from core.spec.config import RunConfig
from core.store import datasets, runs
from core.store.files import read_json, write_json

# Images decoded and predicted together: bounds memory for a big zip at a large image size.
PREDICT_CHUNK = 32
# A zip for batch prediction: at most this many images are classified.
MAX_BATCH_IMAGES = 2000
TOP_LOSSES = 48
MOST_CONFUSED = 10


def _roc(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """ROC-AUC (binary: plain; otherwise one-vs-rest, macro) and the ROC curves, from scikit-learn.

    A class with no test image (or only test images) has no ROC curve; the overall AUC is then
    undefined, and the note says why instead of averaging over fewer classes without saying so.
    """
    labels = list(range(len(classes)))
    present = [i for i in labels if 0 < int((y_true == i).sum()) < len(y_true)]
    missing = [classes[i] for i in labels if i not in present]
    per_class: list[float | None] = [None] * len(classes)
    curves = []
    targets = [1] if len(classes) == 2 else labels
    for i in labels:
        if i not in present:
            continue
        per_class[i] = float(roc_auc_score(y_true == i, probs[:, i]))
        if i in targets:
            fpr, tpr, _ = roc_curve(y_true == i, probs[:, i])
            name = f"{classes[1]} vs {classes[0]}" if len(classes) == 2 else classes[i]
            curves.append({"class": name, "auc": per_class[i],
                           "fpr": np.round(fpr, 6).tolist(), "tpr": np.round(tpr, 6).tolist()})
    auc, note = None, None
    if missing:
        which = ", ".join(f"'{c}'" for c in missing)
        note = (f"ROC-AUC is undefined: the test images do not include both examples and counter-examples of {which}, "
                "so that class's curve cannot be drawn.")
    elif len(classes) == 2:
        auc = float(roc_auc_score(y_true, probs[:, 1]))
    else:
        auc = float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=labels))
    return {"roc_auc": auc, "roc_auc_note": note, "roc_auc_per_class": per_class, "roc_curves": curves}


def metrics_from_predictions(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class and averaged precision/recall/F1, ROC-AUC with curves, and the confusion matrix."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    # Stored probabilities are rounded; scikit-learn's multi-class AUC wants rows summing to 1.
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    roc = _roc(y_true, probs, classes)
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
                "auc": roc["roc_auc_per_class"][i],
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "roc_auc": roc["roc_auc"],
        "roc_auc_note": roc["roc_auc_note"],
        "roc_curves": roc["roc_curves"],
    }


def most_confused(matrix: list[list[int]], classes: list[str], limit: int = MOST_CONFUSED) -> list[dict[str, Any]]:
    """The largest off-diagonal cells of a confusion matrix: which true class is taken for which."""
    cm = np.asarray(matrix)
    pairs = [
        {"true": classes[t], "predicted": classes[p], "count": int(cm[t, p]),
         "share": float(cm[t, p] / cm[t].sum())}
        for t in range(len(classes)) for p in range(len(classes)) if t != p and cm[t, p] > 0
    ]
    return sorted(pairs, key=lambda r: (-r["count"], -r["share"]))[:limit]


def top_losses(predictions: list[dict[str, Any]], classes: list[str], limit: int = TOP_LOSSES) -> list[dict[str, Any]]:
    """Test images sorted by their cross-entropy loss, -log p(true class): the most confidently wrong first."""
    rows = []
    for p in predictions:
        probs = p["probs"]
        # Stored probabilities are rounded to 6 decimals, so a certain mistake can read 0.
        p_true = max(float(probs[p["true"]]), 1e-7)
        rows.append({
            "file": p["file"], "true": classes[p["true"]], "predicted": classes[p["pred"]],
            "p_true": float(probs[p["true"]]), "p_predicted": float(probs[p["pred"]]),
            "loss": -math.log(p_true), "correct": p["true"] == p["pred"],
        })
    return sorted(rows, key=lambda r: -r["loss"])[:limit]


def confusion_cells(predictions: list[dict[str, Any]], classes: list[str]) -> list[dict[str, Any]]:
    """Every non-empty confusion-matrix cell with its test images: mistakes first, biggest first."""
    cells: dict[tuple[int, int], list[str]] = {}
    for p in predictions:
        cells.setdefault((p["true"], p["pred"]), []).append(p["file"])
    out = [{"true": classes[t], "predicted": classes[q], "count": len(files), "files": files}
           for (t, q), files in cells.items()]
    return sorted(out, key=lambda c: (c["true"] == c["predicted"], -c["count"], c["true"], c["predicted"]))


def report(ev: dict[str, Any]) -> dict[str, Any]:
    """Everything the Predictions page shows, derived from an eval.json (older ones included).

    With stored predictions, the metrics are recomputed by scikit-learn (which adds ROC-AUC to an
    eval.json written before it was stored) and the mistake views are filled in; without them,
    the stored metrics are shown as they are and the mistake views are empty.
    """
    out = dict(ev)
    classes = ev["classes"]
    predictions = ev.get("predictions") or []
    out.setdefault("roc_auc", None)
    out.setdefault("roc_auc_note", None)
    out.setdefault("roc_curves", [])
    out["most_confused"] = most_confused(ev["confusion_matrix"], classes) if "confusion_matrix" in ev else []
    out["top_losses"], out["cells"], out["confidence"] = [], [], {"confidence": [], "correct": []}
    if predictions:
        y_true = np.array([p["true"] for p in predictions])
        probs = np.array([p["probs"] for p in predictions], dtype=np.float64)
        out.update(metrics_from_predictions(y_true, probs, classes))
        out["most_confused"] = most_confused(out["confusion_matrix"], classes)
        out["top_losses"] = top_losses(predictions, classes)
        out["cells"] = confusion_cells(predictions, classes)
        out["confidence"] = {"confidence": probs.max(axis=1).tolist(),
                             "correct": [p["true"] == p["pred"] for p in predictions]}
    return out


def overfitting_hint(history: list[dict[str, Any]], min_rise: float = 0.05) -> str | None:
    """A sentence when validation loss rose after its best epoch while training loss kept falling."""
    val = [(i, h.get("val_loss"), h.get("loss")) for i, h in enumerate(history)]
    val = [(i, v, t) for i, v, t in val if isinstance(v, (int, float)) and isinstance(t, (int, float))
           and math.isfinite(v) and math.isfinite(t)]
    if len(val) < 3:
        return None
    best = min(val, key=lambda r: r[1])
    last = val[-1]
    if last[0] - best[0] < 2:
        return None
    if last[1] > best[1] * (1 + min_rise) and last[2] < best[2]:
        return (f"Validation loss was lowest at epoch {best[0] + 1} ({best[1]:.3f}) and rose to {last[1]:.3f} by the end, "
                f"while training loss kept falling ({best[2]:.3f} to {last[2]:.3f}): the model started to memorise its "
                "training images (overfitting). The saved model is the one from the best epoch; more images, stronger "
                "augmentation or fewer epochs usually help.")
    return None


# How ms_per_image is measured, so runs compare: the model alone on images already decoded, after a warm-up
# call (the first call traces the graph), the best of a few timings (a busy machine slows some of them).
# The inference batch: a batch of 32 images of 224 px through the whole network costs ~300 MB more at the peak.
LATENCY_BATCH, LATENCY_REPEATS = tfdata.INFERENCE_BATCH, 3
LATENCY_METHOD = (f"the model alone on a batch of up to {LATENCY_BATCH} decoded test images, after a warm-up, "
                  f"best of {LATENCY_REPEATS} timings")


def latency_ms(model: Any, ds: Any) -> float:
    """Milliseconds per image of the model alone (no file reading or decoding), as LATENCY_METHOD says."""
    batch = next(iter(ds.unbatch().take(LATENCY_BATCH).batch(LATENCY_BATCH)))[0]
    return round(best_ms_per_item(model.predict_on_batch, batch), 3)


def best_ms_per_item(call: Callable[[Any], Any], batch: Any) -> float:
    """Milliseconds per item of `call` on one batch: a warm-up call (tracing and memory allocation are not
    prediction time), then the best of LATENCY_REPEATS timings."""
    call(batch)
    best = float("inf")
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        call(batch)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / int(batch.shape[0])


def evaluate(run_dir: Path, model: Any = None, scores: tuple[Any, float, str] | None = None) -> dict[str, Any]:
    """Predict the run's test split, compute metrics, and write eval.json (predictions kept).

    scores: (the test split's class probabilities in split order, ms per image, how that was measured) when the
    caller computed them itself, from the test images' cached features (a study's trials, core.engine.trials);
    the model then does not pass the images again.
    """

    config = runs.load_config(run_dir)
    if not (run_dir / "split.json").is_file():
        raise RunStateError(f"Run '{run_dir.name}' has not been trained yet, so there is nothing to evaluate.")
    split = read_json(run_dir / "split.json")
    if model is None and (scores is None or split.get("target")):
        if not (run_dir / "model.keras").is_file():
            raise RunStateError(f"Run '{run_dir.name}' has no saved model; train it first.")
        model = modeling.load(run_dir / "model.keras")
    ws = run_dir.parent.parent
    root = datasets.dataset_path(config.dataset_id, ws)
    test = [tuple(item) for item in split["test"]]
    if not test:
        raise DatasetError("The test split is empty; raise the test fraction or add images.")
    if scores is None:
        ds = tfdata.pipeline(root, test, config.image_size, tfdata.INFERENCE_BATCH, False, config.seed)
        probs = window_means(model, config, root, test, model.predict(ds, verbose=0))
        scores = (probs, latency_ms(model, ds), LATENCY_METHOD)
    probs, ms_per_image, latency_method = scores
    y_true = np.array([label for _, label in test])
    classes = split["classes"]
    report = {
        "split": "test",
        "n": len(test),
        "classes": classes,
        **metrics_from_predictions(y_true, probs, classes),
        "ms_per_image": ms_per_image,
        "latency_method": latency_method,
        "predictions": [
            {"file": rel, "true": int(t), "pred": int(p.argmax()), "probs": [round(float(v), 6) for v in p]}
            for (rel, _), t, p in zip(test, y_true, probs)
        ],
    }
    if split.get("target"):
        report["target"] = target_block(split["target"], classes, config, model, ws)
    write_json(run_dir / "eval.json", report)
    return report


def window_means(model: Any, config: RunConfig, root: Path, items: list[tuple[str, int]], probs: np.ndarray) -> np.ndarray:
    """The items' class probabilities as `predict` answers a handed-in file: where a stored item is longer than the
    model's input (sounds: a clip of a window over 1.5 s, imported with --window), the mean of the answers over its
    one-second windows; `probs` (one input per item, a clip's middle second) otherwise."""
    if model_inputs.of_config(config).pieces is None:
        return probs
    arrays = [model_inputs.pieces(config, (root / rel).read_bytes()) for rel, _ in items]
    if all(len(a) == 1 for a in arrays):
        return probs
    return _mean_answers(model, arrays)


def target_block(target: dict[str, Any], classes: list[str], config: Any, model: Any, ws: Path) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix on the target domain's held-out test images (never trained on)."""
    test = [tuple(item) for item in target.get("test", [])]
    block: dict[str, Any] = {"dataset_id": target["dataset_id"], "n": len(test),
                             "shared_classes": target.get("shared_classes", [])}
    if not test:
        block["note"] = ("No accuracy on the target domain: its images have no labels (no class folders named like "
                         "the training classes), so they adapted the model without labels.")
        return block
    root = datasets.dataset_path(target["dataset_id"], ws)
    probs = model.predict(tfdata.pipeline(root, test, config.image_size, config.batch_size, False, config.seed), verbose=0)
    y_true = np.array([label for _, label in test])
    m = metrics_from_predictions(y_true, probs, classes)
    return block | {"accuracy": m["accuracy"], "macro": m["macro"], "per_class": m["per_class"],
                    "confusion_matrix": m["confusion_matrix"],
                    "predictions": [{"file": rel, "true": int(t), "pred": int(p.argmax())}
                                    for (rel, _), t, p in zip(test, y_true, probs)]}


def load_model(run_dir: Path) -> Any:
    """The run's trained model (model.keras); RunStateError when there is none yet."""
    if not (run_dir / "model.keras").is_file():
        state = runs.read_status(run_dir).get("state")
        raise RunStateError(f"Run '{run_dir.name}' has no trained model yet (state: {state}).")

    return modeling.load(run_dir / "model.keras")


def predict(run_dir: Path, images: list[tuple[str, bytes]], top_k: int = 3, model: Any = None) -> list[dict[str, Any]]:
    """Class probabilities for new images, given as (name, file bytes); unreadable files say why.

    `model` is the run's loaded model when the caller already holds it (the page keeps one per
    session); otherwise it is loaded from the run folder.
    """
    if model is None:
        model = load_model(run_dir)
    config = runs.load_config(run_dir)
    classes = read_json(run_dir / "split.json")["classes"]
    results: list[dict[str, Any]] = []
    for start in range(0, len(images), PREDICT_CHUNK):
        arrays, slots = [], []
        for name, data in images[start : start + PREDICT_CHUNK]:
            try:
                # The run's kind decodes (images: pixels); a sound longer than a second gives its one-second windows.
                arrays.append(model_inputs.pieces(config, data))
                slots.append(len(results))
                results.append({"file": name})
            except DatasetError as exc:
                results.append({"file": name, "error": f"'{name}' was skipped: {exc}."})
        if not arrays:
            continue
        for slot, p in zip(slots, _mean_answers(model, arrays)):
            order = np.argsort(p)[::-1][:top_k]
            results[slot]["prediction"] = classes[int(order[0])]
            results[slot]["top"] = [{"class": classes[int(i)], "probability": round(float(p[i]), 6)} for i in order]
    return results


def _mean_answers(model: Any, arrays: list[np.ndarray]) -> np.ndarray:
    """Each file's class probabilities: the mean of the model's answers over its inputs (one for an image, the
    one-second windows of a long sound), the inputs run PREDICT_CHUNK at a time."""
    stacked = np.concatenate(arrays)
    # One chunk is one step of Keras's own predict function (its batch size is 32 too), without
    # predict()'s per-call setup, which costs more than the network for one small image.
    probs = np.concatenate([np.asarray(model.predict_on_batch(stacked[i : i + PREDICT_CHUNK]))
                            for i in range(0, len(stacked), PREDICT_CHUNK)])
    ends = np.cumsum([len(a) for a in arrays])
    return np.stack([probs[end - len(a) : end].mean(axis=0) for a, end in zip(arrays, ends)])


def images_from_zip(data: bytes, limits: ImportLimits = ImportLimits(),
                    max_images: int = MAX_BATCH_IMAGES) -> tuple[list[tuple[str, bytes]], list[dict[str, str]]]:
    """The image files of an uploaded zip as (name, bytes), read member by member with the import guards.

    Nothing is extracted: the same checks as a dataset import (member count, sizes, expansion
    ratio, links, nested archives, paths) apply, and files that are not images are listed as skipped.
    """
    skipped: list[dict[str, str]] = []
    images: list[tuple[str, bytes]] = []
    with tempfile.TemporaryDirectory(prefix="tl-batch-") as tmp:
        path = Path(tmp) / "upload.zip"
        path.write_bytes(data)
        for member, read in archives.zip_entries(path, limits, skipped):
            if member.suffix.lower() not in archives.IMAGE_SUFFIXES:
                skipped.append({"file": str(member), "reason": f"not an image file type ({member.suffix or 'no extension'})"})
                continue
            if len(images) >= max_images:
                skipped.append({"file": str(member), "reason": f"more than {max_images:,} images in the zip"})
                continue
            try:
                images.append((str(member), read()))
            except DatasetError as exc:
                skipped.append({"file": str(member), "reason": str(exc)})
    if not images:
        raise DatasetError("The zip holds no image files (.jpg, .png, ...); put the images to classify in it.")
    return images, skipped


def predictions_csv(results: list[dict[str, Any]]) -> str:
    """Prediction results as CSV text: file, predicted class, its probability, the top classes, any error."""
    k = max((len(r.get("top", [])) for r in results), default=0)
    buf = io.StringIO()
    writer = csv.writer(buf)
    header = ["file", "prediction", "probability"]
    for i in range(2, k + 1):
        header += [f"class_{i}", f"probability_{i}"]
    writer.writerow(header + ["error"])
    for r in results:
        top = r.get("top", [])
        row = [r["file"], r.get("prediction", ""), top[0]["probability"] if top else ""]
        for i in range(1, k):
            row += [top[i]["class"], top[i]["probability"]] if i < len(top) else ["", ""]
        writer.writerow(row + [r.get("error", "")])
    return buf.getvalue()
