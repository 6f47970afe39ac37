"""The Compare table's data: one row per run from its folder, baselines beside their transfer runs; deleting runs."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from core.errors import RunStateError
from core.service import compare
from core.spec.config import RunConfig
from core.store import files, runs


_COUNTER = itertools.count()


def _run(ws: Path, status: dict, evaluation: dict | None = None, val_curve: tuple[float, ...] = (), **config) -> Path:
    """A run folder as the trainer leaves it; each one a second newer than the last."""
    run_dir = runs.runs_root(ws) / f"20260101-12{next(_COUNTER) % 3600:04d}-{os.urandom(6).hex()}"
    run_dir.mkdir(parents=True)
    runs.save_config(run_dir, RunConfig(dataset_id="gone-0123abcd", **config))
    files.write_json(run_dir / "status.json", status)
    for i, acc in enumerate(val_curve, start=1):
        runs.append_event(run_dir, {"type": "epoch_end", "phase": "head", "epoch": i, "epochs": len(val_curve),
                                    "metrics": {"loss": 1.0 / i, "val_accuracy": acc}, "seconds": 1.0})
    if evaluation is not None:
        (run_dir / "eval.json").write_text(json.dumps(evaluation))
    return run_dir


def test_row_reads_every_column_from_the_run_folder(ws):
    run_dir = _run(ws, {"state": "done", "train_seconds": 42.0},
                   {"accuracy": 0.8, "macro": {"f1-score": 0.75}, "roc_auc": 0.91, "ms_per_image": 3.5},
                   val_curve=(0.5, 0.9, 0.7), backbone="mobilenet_v2_0.35", strategy="fine_tune", epochs=5,
                   fine_tune_epochs=5)
    (row,) = compare.table(ws)
    assert row["id"] == run_dir.name and row["path"] == run_dir
    assert (row["backbone"], row["strategy"], row["epochs"]) == ("MobileNet V2 (width 0.35)", "Fine-tuning", 3)
    assert (row["val_accuracy"], row["test_accuracy"], row["macro_f1"], row["auc"]) == (0.9, 0.8, 0.75, 0.91)
    assert (row["train_seconds"], row["ms_per_image"]) == (42.0, 3.5)
    assert [h["val_accuracy"] for h in row["history"]] == [0.5, 0.9, 0.7]
    assert row["params"] is None and row["size_mb"] is None  # no model saved


def test_missing_values_stay_empty_and_planned_epochs_fill_in(ws):
    _run(ws, {"state": "failed"}, backbone="small_cnn", weights="none", strategy="from_scratch", epochs=30)
    _run(ws, {"state": "done"}, {"accuracy": 0.5, "roc_auc": None}, backbone="small_cnn", weights="none",
         strategy="from_scratch")
    done, failed = compare.table(ws)
    assert failed["epochs"] == 30 and failed["test_accuracy"] is None and failed["val_accuracy"] is None
    assert done["auc"] is None and done["macro_f1"] is None


def test_param_count_and_size_come_from_model_keras(ws):
    import tf_keras as keras

    run_dir = _run(ws, {"state": "done"})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    model.compile(optimizer="adam", loss="mse")
    model.fit([[0, 1, 2, 3]], [[1, 2, 3]], verbose=0)  # the optimizer's slots are saved too, and not counted
    model.save(run_dir / "model.keras")
    (row,) = compare.table(ws)
    assert row["params"] == model.count_params() == 4 * 3 + 3 + 4 * 3
    assert row["size_mb"] == round((run_dir / "model.keras").stat().st_size / 2**20, 3)
    (run_dir / "model.keras").write_bytes(b"not a zip")
    assert compare.table(ws)[0]["params"] is None


def test_baseline_is_listed_right_after_its_transfer_run_with_the_verdict(ws):
    other = _run(ws, {"state": "done"}, {"accuracy": 0.6}, val_curve=(0.6,))
    base = _run(ws, {"state": "done"}, {"accuracy": 0.7}, val_curve=(0.8,), weights="none", strategy="from_scratch")
    runs.update_status(base, baseline_of="x")
    transfer = _run(ws, {"state": "done", "baseline_run": base.name}, {"accuracy": 0.65}, val_curve=(0.7,))
    newest = _run(ws, {"state": "done"}, {"accuracy": 0.9}, val_curve=(0.9,))
    rows = compare.table(ws)
    assert [r["id"] for r in rows] == [newest.name, transfer.name, base.name, other.name]
    assert rows[1]["transfer_hurt"] is True and rows[1]["transfer_gain"] == -10.0  # validation points
    assert rows[2]["baseline_of"] == transfer.name
    # The trainer's own flag wins over the recomputed one.
    runs.update_status(transfer, transfer_hurt=False)
    assert compare.table(ws)[1]["transfer_hurt"] is False


def test_delete_run_removes_the_folder_but_refuses_an_active_run(ws):
    done = _run(ws, {"state": "done"})
    running = _run(ws, {"state": "running"})
    runs.delete_run(done.name, ws)
    assert not done.exists()
    with pytest.raises(RunStateError, match="cancel it"):
        runs.delete_run(running.name, ws)
    assert running.exists()


def test_companions_trials_and_pruned_runs_are_named_by_what_they_are(ws):
    # Issue 28, item 6: their configs name their parent's strategy, which used to label them.
    parent = _run(ws, {"state": "done"}, strategy="feature_extraction")
    _run(ws, {"state": "done", "pruned_from": parent.name}, strategy="feature_extraction")
    _run(ws, {"state": "done", "study": "s1", "trial": 2}, strategy="feature_extraction")
    _run(ws, {"state": "done", "student_alone_of": parent.name}, strategy="feature_extraction")
    _run(ws, {"state": "done", "source_only_of": parent.name}, strategy="domain_adversarial",
         target_dataset_id="gray-0123abcd")
    labels = sorted(row["strategy"] for row in compare.table(ws))
    assert labels == ["Feature extraction", "Pruned", "Search trial 3", "Student alone (no teacher)",
                      "Without adaptation"]
    names = [compare.run_label(info, {}) for info in runs.list_runs(ws)]
    assert len(set(names)) == len(names)
