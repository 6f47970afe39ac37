import json

import numpy as np
import pytest

from core.engine import features, modeling, networks, training
from core.errors import TrainingFailed, WeightsUnavailable
from core.spec import backbones, strategies
from core.spec.config import AugmentConfig, HeadConfig, RunConfig
from core.store import files, runs

NO_AUG = AugmentConfig(flip=False, rotate=False)


def _config(tiny, **changes) -> RunConfig:
    base = RunConfig(
        dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=2,
        batch_size=8, patience=0, augment=NO_AUG, val_fraction=0.2, test_fraction=0.2,
    )
    return base.with_changes(**changes).validate()


def _spy_build(monkeypatch):
    """Capture the backbone that training builds, to compare its weights before and after."""

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
    split = files.read_json(run_dir / "split.json")
    steps = -(-len(split["train"]) // cfg.batch_size)
    kinds = [e["type"] for e in runs.read_events(run_dir)]
    epoch = ["batch_end"] * steps + ["epoch_end"]
    assert kinds == ["features", "phase_start", *epoch, *epoch, "phase_end"]
    events = runs.read_events(run_dir)[1:]
    assert events[0]["phase"] == "head" and events[0]["steps"] == steps and events[0]["epochs"] == 2
    assert [e["batch"] for e in events[1 : steps + 1]] == list(range(1, steps + 1))
    epoch_end = events[steps + 1]
    assert set(epoch_end["metrics"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    report = files.read_json(run_dir / "eval.json")
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
        networks.fetch_weights(backbones.get(cfg.backbone), cfg.image_size)
    resolved, notes = training.resolve_weights(cfg)
    assert (resolved.backbone, resolved.weights, resolved.strategy) == ("small_cnn", "none", "from_scratch")
    assert resolved.epochs >= backbones.get("small_cnn").scratch_recipe["epochs"]
    assert len(notes) == 1 and "trained from scratch" in notes[0]


def test_the_fallback_trains_small_cnns_recipe_with_the_warm_up_reaching_the_optimizer(tiny, ws, monkeypatch):
    """The offline fallback takes small_cnn's measured recipe (issue 27: a higher rate that warms up, then decays
    to zero); the trainer's optimizer runs that schedule: a tenth of the rate at the first step, the whole rate
    after the warm-up, zero at the end."""
    cfg = _config(tiny, weights="imagenet", image_size=128, epochs=10, batch_size=32, patience=3)
    resolved, _ = training.resolve_weights(cfg)
    assert (resolved.backbone, resolved.schedule, resolved.learning_rate) == ("small_cnn", "warmup_cosine", 3e-3)
    assert (resolved.image_size, resolved.batch_size, resolved.patience) == (64, 16, 0)
    assert resolved.epochs == max(cfg.epochs, backbones.get("small_cnn").scratch_recipe["epochs"])

    compiled = []
    real = modeling.compile_for
    monkeypatch.setattr(modeling, "compile_for", lambda model, *a, **k: (compiled.append(model), real(model, *a, **k)))
    small = resolved.with_changes(image_size=32, epochs=4, batch_size=4, augment=NO_AUG).validate()
    run_dir = runs.create_run(small, ws)
    assert training.run(small, run_dir)["state"] == "done"
    optimizer = compiled[-1].optimizer
    schedule = optimizer._learning_rate  # the schedule object the optimizer evaluates at each step
    warm, total = schedule.warmup_steps, schedule.warmup_steps + schedule.decay_steps
    assert total > 10 and warm == int(total * modeling.WARMUP_FRACTION) >= 1
    assert float(schedule(0)) == pytest.approx(3e-4) and float(schedule(warm)) == pytest.approx(3e-3)
    assert float(schedule(total)) == pytest.approx(0.0, abs=1e-9)
    # It trained past the warm-up, into the decay (the best epoch's checkpoint, optimizer included, is restored).
    assert int(optimizer.iterations.numpy()) > warm
    assert float(optimizer.learning_rate) < 3e-3


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


def _final_metrics(run_dir):
    last = [e for e in runs.read_events(run_dir) if e["type"] == "epoch_end"][-1]["metrics"]
    return last, files.read_json(run_dir / "eval.json")["accuracy"]


def _assert_cache_matches_full_passes(cfg: RunConfig, ws, monkeypatch) -> dict:
    """Train cfg on cached features, then with full passes; same curves and test accuracy. Returns the feature event."""

    cached_dir = runs.create_run(cfg, ws)
    training.run(cfg, cached_dir)
    feature_pass = next(e for e in runs.read_events(cached_dir) if e["type"] == "features")
    monkeypatch.setattr(strategies, "uses_feature_cache", lambda config, phase: False)
    full_dir = runs.create_run(cfg, ws)
    training.run(cfg, full_dir)
    assert "features" not in [e["type"] for e in runs.read_events(full_dir)]
    (cached, cached_acc), (full, full_acc) = _final_metrics(cached_dir), _final_metrics(full_dir)
    for key in ("loss", "val_loss", "val_accuracy"):
        assert cached[key] == pytest.approx(full[key], rel=1e-3, abs=1e-4), key
    assert cached_acc == full_acc
    return feature_pass


def test_cached_features_train_the_same_head_as_full_passes(tiny, ws, monkeypatch):
    cfg = _config(tiny, epochs=3, head=HeadConfig(dropout=0.0))  # dropout off: its random masks differ by path
    assert _assert_cache_matches_full_passes(cfg, ws, monkeypatch)["computed"] > 0


def test_feature_cache_is_reused_exactly_and_keyed_by_settings(tiny, ws):
    cfg = _config(tiny, epochs=1)
    first, second = runs.create_run(cfg, ws), runs.create_run(cfg, ws)
    training.run(cfg, first)
    training.run(cfg, second)
    passes = [next(e for e in runs.read_events(d) if e["type"] == "features") for d in (first, second)]
    assert passes[0]["computed"] == passes[0]["images"] > 0
    assert passes[1]["computed"] == 0  # every vector came from the cache
    other = runs.create_run(cfg.with_changes(head=HeadConfig(pooling="max")), ws)
    training.run(cfg.with_changes(head=HeadConfig(pooling="max")), other)
    assert next(e for e in runs.read_events(other) if e["type"] == "features")["computed"] > 0


def test_feature_cache_file_names_the_earlier_run_and_its_weights(ws):

    cfg = RunConfig(dataset_id="d-0123abcd", backbone="mobilenet_v1_0.25", strategy="domain_weights", weights="run",
                    source_run="20260101-000000-aaaaaaaaaaaa", image_size=32).validate()
    other = cfg.with_changes(source_run="20260101-000000-bbbbbbbbbbbb")
    assert features.cache_file(ws, cfg, 0) != features.cache_file(ws, other, 0)
    assert features.cache_file(ws, cfg, 2) != features.cache_file(ws, other, 2)
    # The same run whose weights file changed (a cancelled run resumed later saves a new model.keras).
    model = ws / "runs" / cfg.source_run / "model.keras"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"first weights")
    first = features.cache_file(ws, cfg, 0)
    model.write_bytes(b"other weights, longer")
    assert features.cache_file(ws, cfg, 0) != first
    # weight_init starts from the run's early checkpoint, not its model.keras.
    early = cfg.with_changes(strategy="weight_init")
    assert features.source_weights_file(ws, early) == ws / "runs" / cfg.source_run / "checkpoints" / runs.EARLY_CHECKPOINT
    # A TF Hub SavedModel folder replaced under the same path.
    folder = ws.parent / "hub_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"tensors")
    hub = RunConfig(dataset_id="d-0123abcd", backbone=backbones.hub_id(str(folder)), image_size=32).validate()
    first = features.cache_file(ws, hub, 0)
    (folder / "variables" / "variables.index").write_bytes(b"other tensors")
    assert features.cache_file(ws, hub, 0) != first


def test_cached_features_match_full_passes_for_a_backbone_from_an_earlier_run(tiny, ws, monkeypatch):
    source = _config(tiny, epochs=1, seed=7)  # another seed: a backbone unlike the one this run would build
    source_dir = runs.create_run(source, ws)
    training.run(source, source_dir)
    cfg = _config(tiny, epochs=3, strategy="domain_weights", weights="run", source_run=source_dir.name,
                  head=HeadConfig(dropout=0.0))  # dropout off: its random masks differ by path
    feature_pass = _assert_cache_matches_full_passes(cfg, ws, monkeypatch)
    # The source run's own features (random weights) are cached too, under another key: none is reused.
    assert feature_pass["computed"] == feature_pass["images"] > 0


def test_augmented_views_are_cached_k_per_image(tiny, ws):
    cfg = _config(tiny, epochs=2, augment=AugmentConfig(flip=True, rotate=False), augment_views=2)
    run_dir = runs.create_run(cfg, ws)
    training.run(cfg, run_dir)
    feature_pass = next(e for e in runs.read_events(run_dir) if e["type"] == "features")
    assert feature_pass["views"] == 2
    # Without views, augmentation means full passes through the backbone every epoch.
    plain = cfg.with_changes(augment_views=0)
    plain_dir = runs.create_run(plain, ws)
    training.run(plain, plain_dir)
    assert "features" not in [e["type"] for e in runs.read_events(plain_dir)]


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tiny, ws):
    cfg = _config(tiny, epochs=3)
    run_dir = runs.create_run(cfg, ws)
    calls = []
    steps = None

    def stop_in_second_epoch():
        calls.append(1)
        return len(calls) > steps

    split_steps = -(-round(sum(tiny["counts"].values()) * 0.6) // cfg.batch_size)
    steps = split_steps
    assert training.run(cfg, run_dir, should_stop=stop_in_second_epoch)["state"] == "cancelled"
    assert modeling.checkpoint_exists(run_dir / "checkpoints" / "last")
    result = training.run(cfg, run_dir, resume=True)
    assert result["state"] == "done"
    epoch_events = [e for e in runs.read_events(run_dir) if e["type"] == "epoch_end"]
    assert len(epoch_events) == 3  # 2 before the cancel (the second partial), 1 after the resume
    assert any("Resumed from the last checkpoint (2 epochs" in e.get("message", "") for e in runs.read_events(run_dir))


def test_mirrored_strategy_trains_on_two_logical_cpus(tiny, ws, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    cfg = _config(tiny, epochs=1, batch_size=8)
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    script = (
        "import sys, core, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from core.cli import main\n"
        f"sys.exit(main(['train', {str(path)!r}, '--workspace', {str(ws)!r}, '--json', '--quiet', '--distribute', 'mirrored']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = runs.run_path(json.loads(proc.stdout)["id"], ws)
    notices = [e["message"] for e in runs.read_events(run_dir) if e["type"] == "notice"]
    assert "Training on 2 devices in parallel (mirrored)." in notices
    assert runs.read_status(run_dir)["state"] == "done"


def test_multiworker_strategy_runs_from_tf_config(tiny, ws, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from tests.conftest import ROOT

    with socket.socket() as s:  # a free loopback port for the one-worker cluster
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "config.json"
    path.write_text(_config(tiny, epochs=1).to_json())
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                                                   "task": {"type": "worker", "index": 0}})}
    proc = subprocess.run([sys.executable, "-m", "core", "train", str(path), "--workspace", str(ws), "--json", "--quiet",
                           "--distribute", "multiworker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = runs.run_path(json.loads(proc.stdout)["id"], ws)
    assert "Training on 1 device in parallel (multiworker)." in [e.get("message") for e in runs.read_events(run_dir)]


def test_server_epoch_cap_applies_with_a_notice(tiny, ws, monkeypatch):
    monkeypatch.setenv("TL_MAX_EPOCHS", "1")
    cfg = _config(tiny, epochs=5)
    run_dir = runs.create_run(cfg, ws)
    training.run(cfg, run_dir)
    assert runs.load_config(run_dir).epochs == 1
    assert sum(1 for e in runs.read_events(run_dir) if e["type"] == "epoch_end") == 1
    assert any("limits training to 1 epoch(s)" in e.get("message", "") for e in runs.read_events(run_dir))


def test_an_adapting_run_falling_back_to_scratch_drops_its_run_without_adaptation(tiny):
    # Issue 28's walk: offline without weights, DANN with "also train without adaptation" failed with a sentence
    # about a config field; it now trains the small network from scratch and says adaptation is left out.
    cfg = _config(tiny, weights="imagenet", image_size=128, strategy="domain_adversarial",
                  target_dataset_id="field-0123abcd", compare_source_only=True)
    resolved, notes = training.resolve_weights(cfg)
    assert (resolved.backbone, resolved.strategy, resolved.compare_source_only) == ("small_cnn", "from_scratch", False)
    assert "trained from scratch without domain adaptation instead" in notes[0]


def test_a_baseline_killed_then_resumed_fills_its_runs_baseline_fields(tiny, ws, capsys):
    """--compare-scratch killed during its baseline: resuming the baseline gives the run its verdict."""
    from core import cli

    cfg = _config(tiny, backbone="small_cnn", strategy="from_scratch", epochs=1)
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    baseline_dir = runs.create_run(cfg.with_changes(compare_scratch=False), ws)
    runs.link_companion(run_dir, "baseline", baseline_dir)
    runs.update_status(baseline_dir, "interrupted", message=runs.INTERRUPTED_MESSAGE)  # its process was killed
    assert runs.read_status(run_dir).get("baseline_val_accuracy") is None
    assert cli.main(["resume", baseline_dir.name, "--json", "--workspace", str(ws)]) == 0
    capsys.readouterr()
    status, baseline = runs.read_status(run_dir), runs.read_status(baseline_dir)
    assert baseline["state"] == "done" and status["baseline_val_accuracy"] == baseline["val_accuracy"]
    assert status["transfer_hurt"] == (status["val_accuracy"] < baseline["val_accuracy"])
