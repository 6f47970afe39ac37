"""Domain adaptation: the gradient-reversal layer, MMD and CORAL against hand-computed numbers; target
labels never reach the loss; the source-only baseline shares the split; bad inputs give sentences."""

import json

import numpy as np
import pytest

from core import cli
from core.data import domains
from core.data.importer import import_path
from core.data.samples import generate_shapes_field
from core.engine import adaptation, modeling, training
from core.errors import ConfigError, DatasetError
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, runs
from core.store.files import read_json, write_json


def test_gradient_reversal_is_minus_lambda_times_the_identity():
    import tensorflow as tf

    x = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    upstream = tf.constant([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]])
    for lam in (0.0, 0.3, 1.0):
        with tf.GradientTape(persistent=True) as tape:
            reversed_ = adaptation.gradient_reversal(x, tf.constant(lam))
            plain = tf.identity(x)
            loss_r, loss_p = tf.reduce_sum(upstream * reversed_), tf.reduce_sum(upstream * plain)
        np.testing.assert_array_equal(reversed_.numpy(), x.numpy())  # forward: the identity
        np.testing.assert_allclose(tape.gradient(loss_r, x).numpy(), -lam * tape.gradient(loss_p, x).numpy(), rtol=0, atol=0)


def test_the_ramp_follows_the_paper():
    assert adaptation.ramp(0.0) == 0.0
    assert adaptation.ramp(0.5) == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert 0.9999 < adaptation.ramp(1.0) < 1.0


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8)).astype(np.float32)
    b = rng.normal(size=(400, 8)).astype(np.float32)
    same = float(adaptation.mmd(a, b))  # the biased estimate: about 1/n above zero
    shifted = [float(adaptation.mmd(a, b + s)) for s in (0.5, 1.0, 2.0)]
    assert abs(same) < 0.03 < 0.25 < shifted[0]
    assert same < shifted[0] < shifted[1] < shifted[2]
    assert float(adaptation.mmd(a, a)) == pytest.approx(0.0, abs=1e-5)


def test_coral_matches_the_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 4)).astype(np.float32)
    b = (rng.normal(size=(60, 4)) * [1, 2, 3, 0.5]).astype(np.float32)
    expected = np.sum((np.cov(a, rowvar=False) - np.cov(b, rowvar=False)) ** 2) / (4 * 4 * 4)
    assert float(adaptation.coral(a, b)) == pytest.approx(expected, rel=1e-4)
    assert float(adaptation.coral(a, a)) == pytest.approx(0.0, abs=1e-6)


def test_recolor_map_gives_the_source_the_targets_mean_and_covariance():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(500, 4)) * [1.0, 2.0, 0.5, 1.0]
    mix = np.array([[1.0, 0.5, 0, 0], [0, 1.0, 0.3, 0], [0, 0, 2.0, 0], [0.4, 0, 0, 0.2]])
    target = rng.normal(size=(300, 4)) @ mix + [3.0, -1.0, 0.0, 5.0]
    matrix, shift = adaptation.recolor_map(source, target, ridge=0.0)
    moved = source @ matrix + shift
    np.testing.assert_allclose(moved.mean(axis=0), target.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(np.cov(moved, rowvar=False), np.cov(target, rowvar=False), atol=1e-3)
    # strength 0: the features as they are; half-way: between the two
    matrix0, shift0 = adaptation.recolor_map(source, target, strength=0.0)
    np.testing.assert_allclose(matrix0, np.eye(4)) and np.testing.assert_allclose(shift0, 0.0)
    half = source @ adaptation.recolor_map(source, target, strength=0.5, ridge=0.0)[0]
    np.testing.assert_allclose(half, (source + source @ matrix) / 2, atol=1e-4)
    # fewer images than features (a covariance of rank < d): the ridge keeps the map finite
    small, _ = adaptation.recolor_map(rng.normal(size=(5, 16)), rng.normal(size=(7, 16)))
    assert np.isfinite(small).all()
    # too many features for covariances (a flattened map): each feature gets the target's mean and spread
    scale, shift = adaptation.recolor_map(source, target, ridge=0.0, max_features=3)
    assert scale.shape == (4,)
    moved = adaptation.recolor(source, scale, shift)
    np.testing.assert_allclose(moved.mean(axis=0), target.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(moved.std(axis=0), target.std(axis=0), rtol=1e-4)


def test_the_trainer_recolours_source_features_only():
    """The map applies to the source batch while training; prediction (and so the saved model) sees features as
    they are."""
    import tf_keras as keras

    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, activation="relu", name="hidden")(keras.layers.Dropout(0.0, name="hidden_dropout")(inputs))
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(keras.layers.Dropout(0.0, name="dropout")(x))
    model = keras.Model(inputs, out)
    shift = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    trainer = adaptation.adaptation_model(model, "discrepancy", "recolor", 1.0, 10,
                                          recolor=(np.zeros((3, 3), np.float32), shift))
    xs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    recoloured = trainer.activations(xs, source=True).numpy()
    np.testing.assert_allclose(recoloured, np.repeat(model.get_layer("hidden")(shift[None]).numpy(), 5, axis=0),
                               atol=1e-6)
    np.testing.assert_allclose(trainer.activations(xs).numpy(), model.get_layer("hidden")(xs).numpy(), atol=1e-6)
    np.testing.assert_allclose(trainer(xs).numpy(), model(xs).numpy(), atol=1e-6)


def _spy_on_recolor_map(monkeypatch) -> list:
    """(source shape, target shape, strength) of every re-colouring map made from now on."""
    calls = []
    real = adaptation.recolor_map

    def spy(source, target_, strength=1.0, **kw):
        calls.append((source.shape, target_.shape, strength))
        return real(source, target_, strength, **kw)

    monkeypatch.setattr(adaptation, "recolor_map", spy)
    return calls


def test_adaptive_layers_recolours_by_default_in_both_phases(ws, tiny, target, monkeypatch):
    """The default of adaptive_layers: CORAL on features, the map from the source's training features and the
    target's adapt images, on cached features and again with the backbone opened; the baseline makes none."""
    calls = _spy_on_recolor_map(monkeypatch)
    cfg = _config(tiny, target, strategy="adaptive_layers", epochs=1, fine_tune_epochs=1, fine_tune_layers=2,
                  compare_source_only=True)
    assert cfg.adapt_loss == "recolor"
    run_dir = runs.create_run(cfg, ws)
    assert training.train_and_compare(cfg, run_dir)["state"] == "done"
    split = read_json(run_dir / "split.json")
    n_train, n_adapt = len(split["train"]), len(split["target"]["adapt"])
    assert [(s[0], t[0], w) for s, t, w in calls] == [(n_train, n_adapt, 1.0)] * 2  # adapt, adapt_fine_tune
    ends = [e for e in runs.read_events(run_dir) if e["type"] == "epoch_end"]
    assert all(np.isfinite(e["metrics"]["adapt_loss"]) for e in ends)


def test_dann_recolours_first_by_default_and_not_when_asked_nor_in_its_baseline(ws, tiny, target, monkeypatch, capsys):
    """domain_adversarial re-colours the source's features in full before its adversarial training (adapt_recolor,
    on by default; the bench's +4 -> +11 points), and the adversarial loss still trains; --no-recolor and the
    source-only baseline make no map."""
    calls = _spy_on_recolor_map(monkeypatch)
    cfg = _config(tiny, target, epochs=1, adapt_weight=0.03, compare_source_only=True)
    assert cfg.strategy == "domain_adversarial" and cfg.adapt_recolor and adaptation.recolor_strength(cfg) == 1.0
    run_dir = runs.create_run(cfg, ws)
    assert training.train_and_compare(cfg, run_dir)["state"] == "done"
    split = read_json(run_dir / "split.json")
    assert [(s[0], t[0], w) for s, t, w in calls] == [(len(split["train"]), len(split["target"]["adapt"]), 1.0)]
    ends = [e for e in runs.read_events(run_dir) if e["type"] == "epoch_end"]
    assert all(e["metrics"]["adapt_loss"] > 0 for e in ends)  # the domain classifier's loss, not a distance left

    calls.clear()
    plain = cfg.with_changes(adapt_recolor=False, compare_source_only=False)
    assert training.run(plain, runs.create_run(plain, ws))["state"] == "done"
    assert calls == [] and adaptation.recolor_strength(plain) == 0.0
    # adapt_recolor is DANN's: adaptive_layers with a loss does not re-colour because of it
    assert adaptation.recolor_strength(cfg.with_changes(strategy="adaptive_layers", adapt_loss="mmd")) == 0.0

    capsys.readouterr()
    args = ["config", "--dataset", tiny["id"], "--strategy", "domain_adversarial", "--target-dataset", target["id"],
            "--workspace", str(ws), "--json"]
    assert cli.main(args) == 0 and json.loads(capsys.readouterr().out)["adapt_recolor"] is True
    assert cli.main(args + ["--no-recolor"]) == 0 and json.loads(capsys.readouterr().out)["adapt_recolor"] is False


# ---------------------------------------------------------------- training with a target


@pytest.fixture
def target(ws, tiny, tmp_path):
    """A tiny target domain: the same three classes as `tiny`, drawn in the shapes-field look."""
    src = generate_shapes_field(tmp_path / "field", per_class=10, size=40, seed=2)
    for f in (src / "star").iterdir():  # `tiny` has no stars
        f.unlink()
    (src / "star").rmdir()
    return import_path(src, ws, name="field")


def _config(tiny, target, **changes) -> RunConfig:
    base = RunConfig(dataset_id=tiny["id"], backbone="small_cnn", weights="none", strategy="domain_adversarial",
                     image_size=32, epochs=2, batch_size=8, patience=0, augment=AugmentConfig(flip=False, rotate=False),
                     val_fraction=0.2, test_fraction=0.2, target_dataset_id=target["id"])
    return base.with_changes(**changes).validate()


def _weights(run_dir):
    return modeling.load(run_dir / "model.keras").get_weights()


def test_baseline_shares_the_split_and_target_labels_never_train(ws, tiny, target):
    import tf_keras as keras

    cfg = _config(tiny, target, compare_source_only=True)
    run_dir = runs.create_run(cfg, ws)
    result = training.train_and_compare(cfg, run_dir)
    assert result["state"] == "done" and isinstance(result["adaptation_helped"], bool)
    baseline_dir = runs.run_path(result["source_only_run"], ws)
    assert runs.load_config(baseline_dir).adapt_weight == 0.0
    split, base_split = read_json(run_dir / "split.json"), read_json(baseline_dir / "split.json")
    assert split == base_split  # the same source split and the same target parts
    held_out = {rel for rel, _ in split["target"]["test"]}
    assert held_out and not held_out & set(split["target"]["adapt"])  # target test images never adapt
    ev = read_json(run_dir / "eval.json")["target"]
    assert ev["n"] == len(held_out) and 0.0 <= ev["accuracy"] <= 1.0
    assert np.asarray(ev["confusion_matrix"]).sum() == len(held_out) and "f1-score" in ev["macro"]
    assert runs.read_status(run_dir)["source_only_target_accuracy"] == read_json(baseline_dir / "eval.json")["target"]["accuracy"]

    # Scramble the target's labels (which file is in which class): the trained weights stay identical.
    record = datasets.dataset_path(target["id"], ws) / "dataset.json"
    info = read_json(record)
    every = sorted(rel for c in info["classes"] for rel in info["images"][c])
    order = np.random.default_rng(5).permutation(len(every))
    sizes = [len(info["images"][c]) for c in info["classes"]]
    shuffled = [every[i] for i in order]
    info["images"] = {c: shuffled[sum(sizes[:i]):sum(sizes[:i + 1])] for i, c in enumerate(info["classes"])}
    assert info["images"] != read_json(record)["images"]
    write_json(record, info)
    keras.backend.clear_session()
    again = runs.create_run(cfg.with_changes(compare_source_only=False), ws)
    training.run(runs.load_config(run_dir).with_changes(compare_source_only=False), again)
    assert read_json(again / "split.json")["target"]["adapt"] == split["target"]["adapt"]
    for w1, w2 in zip(_weights(run_dir), _weights(again)):
        np.testing.assert_array_equal(w1, w2)


def test_adaptive_layers_with_coral_trains_and_reports_the_target(ws, tiny, target, capsys):
    # One epoch on cached features, then one with the top of the backbone opened (images of both domains).
    cfg = _config(tiny, target, strategy="adaptive_layers", adapt_loss="coral", epochs=1, fine_tune_epochs=1,
                  fine_tune_layers=2)
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    assert runs.load_config(run_dir).head.hidden_units == adaptation.ADAPTATION_UNITS  # the adaptation layer
    ends = [e for e in runs.read_events(run_dir) if e["type"] == "epoch_end"]
    assert [e["phase"] for e in ends] == ["adapt", "adapt_fine_tune"]
    assert all(np.isfinite(e["metrics"]["adapt_loss"]) for e in ends)
    assert cli.main(["evaluate", run_dir.name, "--json", "--workspace", str(ws)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"]["dataset_id"] == target["id"] and "predictions" not in out["target"]


def test_a_frozen_backbone_adapts_on_augmented_images(ws, tiny, target):
    """Augmentation is honoured: augmented cached views when asked, else the images themselves each epoch."""
    flip = AugmentConfig(flip=True, rotate=False)
    for views, expected in ((2, [("adapt", 2)]), (0, [])):
        cfg = _config(tiny, target, epochs=1, augment=flip, augment_views=views)
        run_dir = runs.create_run(cfg, ws)
        assert training.run(cfg, run_dir)["state"] == "done"
        passes = [(e["phase"], e["views"]) for e in runs.read_events(run_dir) if e["type"] == "features"]
        assert passes == expected, views


@pytest.mark.parametrize("strategy,changes,recolours", [("domain_adversarial", {}, 1),
                                                      ("domain_adversarial", {"adapt_recolor": False}, 0),
                                                      ("adaptive_layers", {}, 1)])
def test_the_exported_script_of_an_adapting_run_adapts(ws, tiny, target, tmp_path, strategy, changes, recolours):
    """The generated train.py trains with the adaptation loss on the target images, not as a plain run; with
    either strategy's default it re-colours the training images' features like the target's in each phase, as
    the app does (DANN: unless adapt_recolor is off)."""
    import os
    import subprocess
    import sys

    from core.ship import codegen

    cfg = _config(tiny, target, epochs=1, strategy=strategy, **changes)
    script = codegen.training_script(cfg, str(datasets.dataset_path(tiny["id"], ws)), ws=ws)
    assert "class AdaptationTrainer" in script and f"ADAPTS = {adaptation.adapts(cfg)!r}" in script
    assert f"HIDDEN_UNITS = {adaptation.ADAPTATION_UNITS}" in script  # the adaptation layer
    path = tmp_path / "train.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path), str(datasets.dataset_path(tiny["id"], ws)), str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "adapt_loss" in proc.stdout and "test accuracy" in proc.stdout
    recoloured = [line for line in proc.stdout.splitlines() if line.startswith("re-coloured")]
    assert len(recoloured) == recolours, proc.stdout[-2000:]


# ---------------------------------------------------------------- bad inputs


def test_bad_targets_give_sentences(ws, tiny, target, tmp_path):
    with pytest.raises(ConfigError, match="choose one .*target-dataset"):
        RunConfig(dataset_id=tiny["id"], strategy="adaptive_layers").validate()
    with pytest.raises(ConfigError, match="the training dataset itself"):
        RunConfig(dataset_id=tiny["id"], strategy="adaptive_layers", target_dataset_id=tiny["id"]).validate()
    with pytest.raises(ConfigError, match="compare_source_only"):
        RunConfig(dataset_id=tiny["id"], compare_source_only=True).validate()
    with pytest.raises(ConfigError, match="adapt_weight must be between"):
        RunConfig(dataset_id=tiny["id"], strategy="adaptive_layers", target_dataset_id="x", adapt_weight=-1.0).validate()

    small = generate_shapes_field(tmp_path / "small", per_class=5, size=40)  # 4 classes x 5 = 20, minus one class
    for f in (small / "star").iterdir():
        f.unlink()
    (small / "star").rmdir()
    few = import_path(small, ws, name="few")
    with pytest.raises(DatasetError, match="has 15 image\\(s\\); domain adaptation needs at least 20"):
        domains.check_target(tiny, few)

    renamed = generate_shapes_field(tmp_path / "other", per_class=8, size=40)
    for i, folder in enumerate(sorted(renamed.iterdir())):
        folder.rename(renamed / f"kind{i}")
    other = import_path(renamed, ws, name="other")
    [notice] = domains.check_target(tiny, other)
    assert "share no name" in notice and "labels are ignored" in notice
    parts = domains.target_split(tiny, other, seed=1)
    assert parts["test"] == [] and len(parts["adapt"]) == 32

    cfg_args = ["config", "--dataset", tiny["id"], "--strategy", "adaptive_layers", "--workspace", str(ws)]
    assert cli.main(cfg_args + ["--target-dataset", "nope-0123456789ab"]) == 2
    assert cli.main(cfg_args + ["--target-dataset", few["id"]]) == 2
    assert cli.main(cfg_args + ["--target-dataset", target["id"], "--compare-source-only", "--adapt-weight", "0.5"]) == 0
