import json
import shutil

import numpy as np
import pytest

from core import backbones, runs, training
from core.config import AugmentConfig, RunConfig
from core.errors import TrainingFailed, WeightsUnavailable

NO_AUG = AugmentConfig(flip=False, rotate=False)


def _config(tiny, **changes) -> RunConfig:
    base = RunConfig(
        dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=2,
        batch_size=8, patience=0, augment=NO_AUG, val_fraction=0.2, test_fraction=0.2,
    )
    return base.with_changes(**changes).validate()


def _spy_build(monkeypatch):
    """Capture the backbone that training builds, to compare its weights before and after."""
    from core import modeling

    captured = {}
    real_build = modeling.build

    def build(config, num_classes):
        model, base = real_build(config, num_classes)
        captured["base"] = base
        captured["before"] = [w.copy() for w in base.get_weights()]
        captured["head_before"] = [w.copy() for w in model.get_layer("predictions").get_weights()]
        captured["model"] = model
        return model, base

    monkeypatch.setattr(modeling, "build", build)
    return captured


def test_feature_extraction_leaves_the_backbone_unchanged(tiny, ws, monkeypatch):
    captured = _spy_build(monkeypatch)
    cfg = _config(tiny)
    run_dir = runs.create_run(cfg, ws)
    result = training.run(cfg, run_dir)
    assert result["state"] == "done"
    after = captured["base"].get_weights()
    assert len(after) == len(captured["before"])
    for before, now in zip(captured["before"], after):
        np.testing.assert_array_equal(before, now)  # BatchNorm statistics included
    head_after = captured["model"].get_layer("predictions").get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(captured["head_before"], head_after))  # the head did train


def test_run_folder_and_exact_event_sequence(tiny, ws):
    cfg = _config(tiny)
    run_dir = runs.create_run(cfg, ws)
    training.run(cfg, run_dir)
    for name in ("config.json", "status.json", "events.jsonl", "model.keras", "eval.json", "split.json"):
        assert (run_dir / name).is_file(), name
    assert runs.read_status(run_dir)["state"] == "done"
    assert runs.load_config(run_dir) == cfg
    split = runs.read_json(run_dir / "split.json")
    steps = -(-len(split["train"]) // cfg.batch_size)
    kinds = [e["type"] for e in runs.read_events(run_dir)]
    epoch = ["batch_end"] * steps + ["epoch_end"]
    assert kinds == ["phase_start", *epoch, *epoch, "phase_end"]
    events = runs.read_events(run_dir)
    assert events[0]["phase"] == "head" and events[0]["steps"] == steps and events[0]["epochs"] == 2
    assert [e["batch"] for e in events[1 : steps + 1]] == list(range(1, steps + 1))
    epoch_end = events[steps + 1]
    assert set(epoch_end["metrics"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    report = runs.read_json(run_dir / "eval.json")
    assert report["n"] == len(split["test"]) == len(report["predictions"])
    assert np.array(report["confusion_matrix"]).sum() == report["n"]


def test_cancel_stops_at_the_next_batch_and_keeps_a_model(tiny, ws):
    cfg = _config(tiny, epochs=5)
    run_dir = runs.create_run(cfg, ws)
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= 2

    result = training.run(cfg, run_dir, should_stop=should_stop)
    assert result["state"] == "cancelled"
    assert runs.read_status(run_dir)["state"] == "cancelled"
    kinds = [e["type"] for e in runs.read_events(run_dir)]
    assert kinds.count("batch_end") == 2 and kinds[-1] == "phase_end"
    assert (run_dir / "model.keras").is_file()


def test_cancel_file_is_honoured(tiny, ws):
    cfg = _config(tiny, epochs=3)
    run_dir = runs.create_run(cfg, ws)
    runs.request_cancel(run_dir)
    assert training.run(cfg, run_dir)["state"] == "cancelled"


def test_nan_loss_fails_with_a_plain_sentence(tiny, ws, monkeypatch):
    import tensorflow as tf

    from core import modeling

    def nan_compile(model, name, learning_rate):
        model.compile(optimizer="sgd", loss=lambda y, p: tf.reduce_mean(p) * np.nan, metrics=["accuracy"])

    monkeypatch.setattr(modeling, "compile_for", nan_compile)
    cfg = _config(tiny)
    run_dir = runs.create_run(cfg, ws)
    with pytest.raises(TrainingFailed, match="loss became NaN"):
        training.run(cfg, run_dir)
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "lower the learning rate" in status["message"]
    assert (run_dir / "events.jsonl").is_file()


def test_fine_tune_unfreezes_only_top_layers_in_its_second_phase(tiny, ws):
    cfg = _config(tiny, strategy="fine_tune", epochs=1, fine_tune_epochs=1, fine_tune_layers=4)
    run_dir = runs.create_run(cfg, ws)
    training.run(cfg, run_dir)
    starts = [e for e in runs.read_events(run_dir) if e["type"] == "phase_start"]
    assert [s["phase"] for s in starts] == ["head", "fine_tune"]
    assert starts[1]["trainable_params"] > starts[0]["trainable_params"]


def test_from_scratch_trains_the_whole_network(tiny, ws):
    cfg = _config(tiny, backbone="small_cnn", strategy="from_scratch", epochs=1)
    run_dir = runs.create_run(cfg, ws)
    training.run(cfg, run_dir)
    start = next(e for e in runs.read_events(run_dir) if e["type"] == "phase_start")
    assert start["phase"] == "scratch" and start["trainable_params"] > 100_000


def test_missing_weights_fall_back_to_scratch_with_a_sentence(tiny):
    cfg = _config(tiny, weights="imagenet", image_size=128)
    with pytest.raises(WeightsUnavailable, match=r"mobilenet_2_5_128_tf_no_top\.h5.*copy that file into"):
        backbones.fetch_weights(backbones.get(cfg.backbone), cfg.image_size)
    resolved, notes = training.resolve_weights(cfg)
    assert (resolved.backbone, resolved.weights, resolved.strategy) == ("small_cnn", "none", "from_scratch")
    assert resolved.epochs >= training.SCRATCH_MIN_EPOCHS
    assert len(notes) == 1 and "trained from scratch" in notes[0]


def test_fallback_prefers_the_best_cached_backbone(tiny, _isolated_home):
    models = _isolated_home / ".keras" / "models"
    models.mkdir(parents=True)
    # Only the file's presence is consulted when choosing; nothing is loaded here.
    (models / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5").write_bytes(b"x")
    (models / "mobilenet_2_5_224_tf_no_top.h5").write_bytes(b"x")
    cfg = _config(tiny, backbone="efficientnet_b0", weights="imagenet", image_size=128)
    resolved, notes = training.resolve_weights(cfg)
    assert resolved.backbone == "mobilenet_v2_0.35" and resolved.weights == "imagenet"
    assert "MobileNet V2 (width 0.35) instead" in notes[0]
