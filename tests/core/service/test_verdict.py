"""The verdict of a finished run: against guessing, and against the baseline of its method (issue 28, items 3 and 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.service import verdict
from core.spec.config import RunConfig
from core.store import files, runs

CLASSES5 = ["daisy", "dandelion", "rose", "sunflower", "tulip"]


def _run(ws: Path, status: dict, classes: list[str] = CLASSES5, events: list[dict] | None = None, **config) -> Path:
    run_dir = runs.runs_root(ws) / f"20260101-120000-{os.urandom(6).hex()}"
    run_dir.mkdir(parents=True)
    runs.save_config(run_dir, RunConfig(dataset_id="flowers-0123abcd", **config))
    files.write_json(run_dir / "status.json", status)
    (run_dir / "eval.json").write_text(json.dumps({"accuracy": status.get("test_accuracy"), "classes": classes}))
    for event in events or []:
        runs.append_event(run_dir, event)
    return run_dir


def test_a_guessing_level_model_is_bad_and_says_what_to_try(ws):
    run_dir = _run(ws, {"state": "done", "test_accuracy": 0.2})
    v = verdict.judge(run_dir)
    assert v.level == "bad" and v.chance == 0.2
    assert "about what guessing gets with 5 classes (20.0%)" in v.headline
    assert "Try a pretrained backbone" in v.text()


def test_a_good_model_is_good_and_names_guessing(ws):
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.8}))
    assert v.level == "good" and v.headline == "Test accuracy 80.0% (guessing would get 20.0%)."


def test_a_pruning_far_below_its_parent_warns_with_the_points_lost(ws):
    parent = _run(ws, {"state": "done", "test_accuracy": 0.734})
    child = _run(ws, {"state": "done", "test_accuracy": 0.467, "pruned_from": parent.name})
    v = verdict.judge(child)
    assert v.level == "warn" and v.baseline["kind"] == "pruned"
    assert "46.7% against 73.4% for the same model before pruning (-26.7 points)" in v.text()
    assert "lower sparsity" in v.text()


def test_a_small_loss_after_pruning_stays_good(ws):
    parent = _run(ws, {"state": "done", "test_accuracy": 0.74})
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.72, "pruned_from": parent.name}))
    assert v.level == "good" and "(-2.0 points)" in v.text()


def test_adaptation_is_judged_on_the_target_domain_against_its_companion(ws):
    status = {"state": "done", "test_accuracy": 0.7, "source_only_run": "x", "target_accuracy": 0.467,
              "source_only_target_accuracy": 0.244}
    v = verdict.judge(_run(ws, status, strategy="domain_adversarial", target_dataset_id="gray-0123abcd"))
    assert v.level == "good" and v.baseline["measure"] == "target"
    assert "target-domain accuracy is 46.7% against 24.4% for the same network without adaptation" in v.text()


def test_the_student_alone_and_the_scratch_baseline_are_the_baselines_of_theirs(ws):
    alone = _run(ws, {"state": "done", "test_accuracy": 0.7, "student_alone_of": "d"})
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.5, "student_alone_run": alone.name}))
    assert v.level == "warn" and "the same student trained alone" in v.text()
    scratch = _run(ws, {"state": "done", "test_accuracy": 0.3, "baseline_of": "t"})
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.9, "baseline_run": scratch.name}))
    assert v.level == "good" and "trained from scratch (+60.0 points)" in v.text()


def test_a_companion_near_chance_is_information_not_a_failure(ws):
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.22, "baseline_of": "20260101-120000-aaaaaaaaaaaa"}))
    assert v.level == "warn" and "from-scratch baseline of run 20260101-120000-aaaaaaaaaaaa" in v.text()


def test_early_stopping_is_named_as_the_reason_for_fewer_epochs(ws):
    events = [{"type": "epoch_end", "phase": "head", "epoch": i, "metrics": {}} for i in range(1, 5)]
    events.append({"type": "phase_end", "phase": "head", "epochs_run": 4, "stopped_early": True})
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.8}, events=events, strategy="feature_extraction",
                           epochs=10, patience=3))
    assert "stopped after 4 of up to 10 epochs" in v.text() and "early stopping" in v.text()


def test_no_verdict_before_the_run_is_done(ws):
    assert verdict.judge(_run(ws, {"state": "running"})) is None


def test_an_adapted_model_guessing_on_the_target_domain_is_not_green(ws):
    status = {"state": "done", "test_accuracy": 0.8, "source_only_run": "x", "target_accuracy": 0.24,
              "source_only_target_accuracy": 0.21}
    v = verdict.judge(_run(ws, status, strategy="domain_adversarial", target_dataset_id="gray-0123abcd"))
    assert v.level == "warn"
    assert "24.0% is about what guessing gets (20.0%)" in v.text() and "Try a smaller adaptation weight" in v.text()


def test_a_layer_transfer_is_judged_against_its_source_network_on_the_same_classes(ws):
    source = _run(ws, {"state": "done", "test_accuracy": 0.82})
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.6}, strategy="layer_transfer",
                           source_run=source.name))
    assert v.level == "warn" and v.baseline["kind"] == "transfer_source"
    assert "60.0% against 82.0% for the network its layers were copied from" in v.text()
    assert "Try distillation instead" in v.text()
    # A source trained on other classes has no comparable accuracy: only chance is the measure.
    other = _run(ws, {"state": "done", "test_accuracy": 0.9}, classes=["cat", "dog"])
    v = verdict.judge(_run(ws, {"state": "done", "test_accuracy": 0.6}, strategy="layer_transfer", source_run=other.name))
    assert v.level == "good" and v.baseline is None


def test_a_guessing_model_still_names_the_baseline_it_was_measured_against(ws):
    status = {"state": "done", "test_accuracy": 0.25, "source_only_run": "x", "target_accuracy": 0.25,
              "source_only_target_accuracy": 0.3}
    v = verdict.judge(_run(ws, status, classes=["a", "b", "c", "d"], strategy="domain_adversarial",
                           target_dataset_id="gray-0123abcd"))
    assert v.level == "bad" and "about what guessing gets with 4 classes" in v.headline
    assert "25.0% against 30.0% for the same network without adaptation (-5.0 points)" in v.text()
