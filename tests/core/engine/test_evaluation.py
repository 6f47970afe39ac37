"""Evaluation: metrics equal scikit-learn's, the views derived from stored predictions, prediction on new images."""

import csv
import io
import json
import math
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support,
                             roc_auc_score, roc_curve)

from core.cli import main
from core.data import importer
from core.data.limits import ImportLimits
from core.engine import evaluation, training
from core.errors import DatasetError
from core.spec.config import AugmentConfig, RunConfig
from core.store import files, runs

CLASSES = ["cat", "dog", "fox"]
_TRAINED: dict[str, Path] = {}


def trained_copy(tmp_path_factory, tiny_source) -> Path:
    """A private copy of a real tiny run (mobilenet_v1_0.25, random weights, 32 px, one epoch).

    The run is trained once per test session (about 5 s) and copied into a fresh workspace for
    each caller, so tests that add files to a run folder cannot see each other's.
    """

    if "run" not in _TRAINED:
        ws = tmp_path_factory.mktemp("trained-ws")
        info = importer.import_path(tiny_source, ws, name="tiny")
        cfg = RunConfig(dataset_id=info["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=1,
                        batch_size=8, patience=0, augment=AugmentConfig(flip=True, rotate=False)).validate()
        run_dir = runs.create_run(cfg, ws)
        assert training.run(cfg, run_dir)["state"] == "done"
        _TRAINED["run"] = run_dir
    ws = tmp_path_factory.mktemp("ws")
    source = _TRAINED["run"]
    shutil.copytree(source.parent.parent / "datasets", ws / "datasets")
    shutil.copytree(source, ws / "runs" / source.name)
    return ws / "runs" / source.name


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_source) -> Path:
    return trained_copy(tmp_path_factory, tiny_source)


def _fixed(n=60, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


def test_metrics_equal_scikit_learn_on_fixed_predictions():
    y, probs = _fixed()
    pred = probs.argmax(axis=1)
    m = evaluation.metrics_from_predictions(y, probs, CLASSES)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=average, zero_division=0)
        assert [m[average]["precision"], m[average]["recall"], m[average]["f1-score"]] == pytest.approx([p, r, f])
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
    assert [row["class"] for row in m["per_class"]] == CLASSES
    assert [row["precision"] for row in m["per_class"]] == pytest.approx(p)
    assert [row["recall"] for row in m["per_class"]] == pytest.approx(r)
    assert [row["f1"] for row in m["per_class"]] == pytest.approx(f)
    assert [row["support"] for row in m["per_class"]] == s.tolist()
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert m["roc_auc_note"] is None
    assert [row["auc"] for row in m["per_class"]] == pytest.approx([roc_auc_score(y == i, probs[:, i]) for i in range(3)])
    assert [c["class"] for c in m["roc_curves"]] == CLASSES
    fpr, tpr, _ = roc_curve(y == 1, probs[:, 1])
    assert m["roc_curves"][1]["fpr"] == pytest.approx(fpr, abs=1e-6) and m["roc_curves"][1]["tpr"] == pytest.approx(tpr)
    json.dumps(m, allow_nan=False)  # eval.json stays plain JSON (no Infinity thresholds)


def test_binary_auc_is_the_plain_one_with_a_single_curve():
    y, probs = _fixed(k=2, seed=1)
    m = evaluation.metrics_from_predictions(y, probs, ["no", "yes"])
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert [c["class"] for c in m["roc_curves"]] == ["yes vs no"]


def test_a_class_missing_from_the_test_split_makes_auc_undefined_not_a_crash():
    y, probs = _fixed(seed=2)
    keep = y != 2
    m = evaluation.metrics_from_predictions(y[keep], probs[keep], CLASSES)
    assert m["roc_auc"] is None and "'fox'" in m["roc_auc_note"] and "undefined" in m["roc_auc_note"]
    assert m["per_class"][2]["auc"] is None and m["per_class"][2]["support"] == 0
    assert m["per_class"][0]["auc"] == pytest.approx(roc_auc_score(y[keep] == 0, probs[keep][:, 0]))
    assert [c["class"] for c in m["roc_curves"]] == ["cat", "dog"]


def _eval_without_new_fields():
    """An eval.json as written before ROC-AUC was stored: metrics and predictions only."""
    y, probs = _fixed(n=30, seed=3)
    probs = np.round(probs, 6)
    metrics = evaluation.metrics_from_predictions(y, probs, CLASSES)
    for key in ("roc_auc", "roc_auc_note", "roc_curves"):
        metrics.pop(key)
    predictions = [{"file": f"{CLASSES[t]}/{i:05d}.jpg", "true": int(t), "pred": int(p.argmax()), "probs": p.tolist()}
                   for i, (t, p) in enumerate(zip(y, probs))]
    return {"split": "test", "n": len(y), "classes": CLASSES, **metrics, "predictions": predictions}, y, probs


def test_report_derives_every_view_from_stored_predictions():
    ev, y, probs = _eval_without_new_fields()
    rep = evaluation.report(ev)
    assert rep["roc_auc"] == pytest.approx(roc_auc_score(y, probs / probs.sum(axis=1, keepdims=True), multi_class="ovr"))
    # Top losses: per-sample cross-entropy, as scikit-learn's log_loss of that one sample.
    losses = rep["top_losses"]
    assert [r["loss"] for r in losses] == sorted((r["loss"] for r in losses), reverse=True)
    first = next(p for p in ev["predictions"] if p["file"] == losses[0]["file"])
    assert losses[0]["loss"] == pytest.approx(log_loss([first["true"]], [first["probs"]], labels=[0, 1, 2]), rel=1e-4)
    assert losses[0]["p_true"] == first["probs"][first["true"]]
    # Most-confused pairs come from the confusion matrix's largest off-diagonal cells.
    cm = np.array(rep["confusion_matrix"])
    off = cm - np.diag(np.diag(cm))
    top = rep["most_confused"][0]
    assert top["count"] == off.max() and cm[CLASSES.index(top["true"]), CLASSES.index(top["predicted"])] == off.max()
    assert sum(p["count"] for p in rep["most_confused"]) == off.sum()
    # Every confusion cell lists exactly its images; mix-ups first.
    assert sum(c["count"] for c in rep["cells"]) == len(y)
    for c in rep["cells"]:
        t, q = CLASSES.index(c["true"]), CLASSES.index(c["predicted"])
        assert c["count"] == cm[t, q] == len(c["files"])
    assert rep["cells"][0]["true"] != rep["cells"][0]["predicted"]
    conf = rep["confidence"]
    assert conf["confidence"] == pytest.approx(probs.max(axis=1))
    assert sum(not ok for ok in conf["correct"]) == off.sum()


def test_report_of_an_eval_without_predictions_keeps_the_stored_numbers():
    ev = {"classes": ["a", "b"], "accuracy": 0.5, "macro": {}, "weighted": {}, "per_class": [],
          "confusion_matrix": [[1, 1], [0, 2]]}
    rep = evaluation.report(ev)
    assert rep["accuracy"] == 0.5 and rep["roc_auc"] is None and rep["top_losses"] == [] and rep["cells"] == []
    assert rep["most_confused"] == [{"true": "a", "predicted": "b", "count": 1, "share": 0.5}]


def test_overfitting_hint_only_when_validation_rises_while_training_falls():
    def history(pairs):
        return [{"phase": "head", "loss": t, "val_loss": v} for t, v in pairs]

    rising = history([(1.0, 1.0), (0.6, 0.7), (0.4, 0.8), (0.3, 0.9)])
    assert "lowest at epoch 2" in evaluation.overfitting_hint(rising)
    assert evaluation.overfitting_hint(history([(1.0, 1.0), (0.6, 0.7), (0.4, 0.6), (0.3, 0.5)])) is None
    assert evaluation.overfitting_hint(history([(1.0, 1.0), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9)])) is None  # both rise
    assert evaluation.overfitting_hint(rising[:2]) is None


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_images_from_zip_reads_members_with_the_import_guards():
    images, skipped = evaluation.images_from_zip(_zip({
        "a/one.png": b"png bytes", "two.jpg": b"jpg bytes", "notes.txt": b"x", "inner.zip": b"PK", "__MACOSX/._a": b"",
    }))
    assert images == [("a/one.png", b"png bytes"), ("two.jpg", b"jpg bytes")]
    reasons = {s["file"]: s["reason"] for s in skipped}
    assert "not an image file type" in reasons["notes.txt"] and "archive inside the archive" in reasons["inner.zip"]
    _, skipped = evaluation.images_from_zip(_zip({f"{i}.png": b"x" for i in range(3)}), max_images=2)
    assert skipped == [{"file": "2.png", "reason": "more than 2 images in the zip"}]
    with pytest.raises(DatasetError, match="points outside the archive"):
        evaluation.images_from_zip(_zip({"../evil.png": b"x"}))
    images, skipped = evaluation.images_from_zip(_zip({"big.png": bytes(3 * 2**20), "ok.png": b"png"}),
                                                 limits=ImportLimits(max_ratio=10))
    assert [name for name, _ in images] == ["ok.png"] and "possible zip bomb" in skipped[0]["reason"]
    with pytest.raises(DatasetError, match="holds no image files"):
        evaluation.images_from_zip(_zip({"readme.txt": b"hi"}))
    with pytest.raises(DatasetError, match="not a readable zip"):
        evaluation.images_from_zip(b"not a zip")


def test_predictions_csv_has_one_row_per_file():
    results = [{"file": "a.png", "prediction": "cat", "top": [{"class": "cat", "probability": 0.7},
                                                               {"class": "dog", "probability": 0.3}]},
               {"file": "b.png", "error": "'b.png' was skipped: not a readable image."}]
    rows = list(csv.DictReader(io.StringIO(evaluation.predictions_csv(results))))
    assert rows[0] == {"file": "a.png", "prediction": "cat", "probability": "0.7", "class_2": "dog",
                       "probability_2": "0.3", "error": ""}
    assert rows[1]["prediction"] == "" and "not a readable image" in rows[1]["error"]


def test_cli_predict_agrees_with_the_page_function(trained, tiny_source, capsys, monkeypatch):
    images = sorted(tiny_source.rglob("*.png"))[:3]
    code = main(["predict", trained.name, *map(str, images), "--top-k", "3", "--json",
                 "--workspace", str(trained.parent.parent)])
    cli = json.loads(capsys.readouterr().out)
    assert code == 0
    pairs = [(str(p), p.read_bytes()) for p in images]
    model = evaluation.load_model(trained)
    monkeypatch.setattr(evaluation, "PREDICT_CHUNK", 2)  # the page's call, in two chunks
    page = evaluation.predict(trained, pairs, top_k=3, model=model)
    assert [r["prediction"] for r in cli] == [r["prediction"] for r in page]
    for a, b in zip(cli, page):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        assert [t["probability"] for t in a["top"]] == pytest.approx([t["probability"] for t in b["top"]], abs=1e-5)
    assert all(math.isclose(sum(t["probability"] for t in r["top"]), 1.0, abs_tol=1e-4) for r in cli)  # 3 classes


def test_a_trained_run_stores_auc_and_its_report_matches_the_stored_metrics(trained):
    ev = files.read_json(trained / "eval.json")
    rep = evaluation.report(ev)
    assert "roc_auc" in ev and len(ev["roc_curves"]) == len(ev["classes"])
    assert rep["accuracy"] == pytest.approx(ev["accuracy"]) and rep["confusion_matrix"] == ev["confusion_matrix"]
    assert rep["roc_auc"] == pytest.approx(ev["roc_auc"], abs=1e-4)
