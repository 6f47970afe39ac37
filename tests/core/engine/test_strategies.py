"""Strategies: what each phase trains matches its declaration, frozen weights stay frozen, groups open
top-down, earlier runs' tensors really carry over, and the generated script trains on tiny data.

Two families at tiny inputs with random weights: MobileNet V1 (a chain of depthwise blocks) and
ResNet-50 (residual blocks ending at Add layers).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tf_keras as keras

from core.cli import main
from core.data import importer
from core.engine import layers, modeling, training
from core.errors import ConfigError, RunStateError
from core.ship import codegen
from core.spec import backbones, strategies
from core.spec.config import AugmentConfig, HeadConfig, RunConfig
from core.store import datasets, runs, sources
from tests.conftest import SHARED

NO_AUG = AugmentConfig(flip=False, rotate=False)
FAMILIES = ("mobilenet_v1_0.25", "resnet50")
# Cached ImageNet weights for MobileNet: with random weights its activations vanish through 27
# frozen BatchNorm layers, so a training step would not visibly move anything.
MOBILENET_WEIGHTS = SHARED / "keras-cache" / "models" / "mobilenet_2_5_224_tf_no_top.h5"


def _config(backbone: str, strategy: str, **changes) -> RunConfig:
    weights = strategies.get(strategy).forced_weights or "none"
    return RunConfig(
        dataset_id="d-0123abcd", backbone=backbone, strategy=strategy, weights=weights, image_size=32, epochs=1,
        fine_tune_epochs=1, fine_tune_layers=7, batch_size=4, patience=0, augment=NO_AUG,
        source_run="20260101-000000-abcdefabcdef" if strategies.get(strategy).source else "",
    ).with_changes(**changes).validate()


@pytest.fixture(scope="module")
def built():
    """One classifier per family (3 classes), reused by every strategy: (model, base)."""
    out = {}
    # A fixed seed: the head's random start decides which backbone units get a gradient in one step, so
    # an unseeded build made the opened-weights test fail once in a while (dead ReLUs above the group).
    keras.utils.set_random_seed(0)
    for backbone in FAMILIES:
        out[backbone] = modeling.build(_config(backbone, "fine_tune"), 3)
    if MOBILENET_WEIGHTS.is_file():
        modeling.network(out["mobilenet_v1_0.25"][1]).load_weights(str(MOBILENET_WEIGHTS))
    for model, _ in out.values():
        model.initial = model.get_weights()  # each training test starts from these
    return out


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _declared_trainable(model, base, phase) -> set[int]:
    """The variables a phase declares trainable: the head always; the backbone as base_trainable says."""
    pool = model.layers.index(model.get_layer("pool"))
    head = [v for layer in model.layers[pool:] for v in layer.weights if v.trainable]
    net = modeling.network(base)
    if phase.base_trainable == "none":
        opened = []
    elif phase.base_trainable == "all":
        opened = net.layers
    elif phase.base_trainable == "groups":
        groups = modeling.conv_groups(net)
        opened = [layer for group in groups[len(groups) - phase.top_groups:] for layer in group if not _is_bn(layer)]
    else:
        weighted = [layer for layer in net.layers if layer.weights]
        opened = [layer for layer in weighted[len(weighted) - phase.top_layers:] if not _is_bn(layer)]
    return {id(v) for v in head} | {id(v) for layer in opened for v in layer.weights if v.trainable}


def _group_state(group) -> str:
    opened = [layer.trainable for layer in group if layer.weights and not _is_bn(layer)]
    return "trainable" if all(opened) else "partly" if any(opened) else "frozen"


@pytest.mark.parametrize("backbone", FAMILIES)
@pytest.mark.parametrize("strategy, changes", [
    ("feature_extraction", {}),
    ("fine_tune", {}),
    ("fine_tune", {"fine_tune_unit": "groups", "fine_tune_layers": 2}),
    ("gradual_unfreeze", {}),
    ("from_scratch", {}),
    ("domain_weights", {"fine_tune_epochs": 1}),
    ("weight_init", {}),
])
def test_trainable_parameters_per_phase_match_the_declaration(built, backbone, strategy, changes):
    model, base = built[backbone]
    config = _config(backbone, strategy, **changes)
    table = strategies.phase_table(config)
    phases = strategies.get(strategy).phases(config)
    assert [p.name for p in phases] == table["phases"]
    for column, phase in enumerate(phases):
        modeling.apply_phase(base, phase)
        expected = _declared_trainable(model, base, phase)
        assert {id(v) for v in model.trainable_weights} == expected, phase.name
        assert modeling.count_trainable(model) == sum(int(np.prod(v.shape)) for v in model.weights if id(v) in expected)
        # The picture, drawn from the stored groups without building anything, says the same.
        groups = modeling.conv_groups(modeling.network(base))
        shown = [table["cells"][row][column] for row in range(1, len(table["rows"]))][::-1]  # bottom first
        assert shown == [_group_state(g) for g in groups] if phase.base_trainable != "all" else set(shown) == {"trainable"}


def test_gradual_unfreezing_opens_groups_top_down_then_the_stem(built):
    model, base = built["resnet50"]
    config = _config("resnet50", "gradual_unfreeze")
    phases = strategies.get("gradual_unfreeze").phases(config)
    groups = modeling.conv_groups(modeling.network(base))
    assert len(phases) == 1 + len(groups) == 1 + backbones.group_count("resnet50")
    opened_before: set[int] = set()
    newly = []
    for phase in phases:
        modeling.apply_phase(base, phase)
        opened = {i for i, g in enumerate(groups) if _group_state(g) == "trainable"}
        assert opened_before <= opened and len(opened - opened_before) <= 1
        newly += sorted(opened - opened_before)
        opened_before = opened
    assert newly == list(range(len(groups) - 1, -1, -1))  # the top group first, the stem (group 0) last
    assert phases[-1].name == "unfreeze_stem"


def _train_one_step(model):
    # Smooth blotches rather than pixel noise, which drives ImageNet filters into dead ReLUs.
    coarse = np.random.default_rng(0).uniform(30, 220, (4, 4, 4, 3))
    images = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2).astype("float32")
    model.train_on_batch(images, np.array([0, 1, 2, 1]))


@pytest.mark.parametrize("backbone, strategy", [("mobilenet_v1_0.25", "gradual_unfreeze"), ("resnet50", "fine_tune")])
def test_frozen_weights_stay_unchanged_and_opened_ones_train(built, backbone, strategy):
    if backbone.startswith("mobilenet") and not MOBILENET_WEIGHTS.is_file():
        pytest.skip(f"needs cached ImageNet weights ({MOBILENET_WEIGHTS})")
    model, base = built[backbone]
    for phase in strategies.get(strategy).phases(_config(backbone, strategy)):
        model.set_weights(model.initial)  # each phase from the same start, not from the previous phase's step
        modeling.apply_phase(base, phase)
        frozen = {id(v) for layer in modeling.network(base).layers if not layer.trainable for v in layer.weights}
        trainable = {id(v) for v in model.trainable_weights}
        before = {id(v): v.numpy().copy() for v in model.weights}
        modeling.compile_for(model, "sgd", 0.001)
        model.run_eagerly = True  # one step: tracing a graph would cost more than it saves
        _train_one_step(model)
        after = {id(v): v.numpy() for v in model.weights}
        assert all(np.array_equal(before[i], after[i]) for i in frozen), phase.name  # BatchNorm statistics included
        head = {id(v) for v in model.get_layer("predictions").weights}
        assert all(not np.array_equal(before[i], after[i]) for i in head), phase.name
        if phase.base_trainable != "none":
            backbone_opened = trainable & {id(v) for v in base.weights}
            assert backbone_opened and any(not np.array_equal(before[i], after[i]) for i in backbone_opened), phase.name


# ---------------------------------------------------------------- weights from earlier runs


@pytest.fixture(scope="module")
def source(tmp_path_factory, tiny_source):
    """A finished run in its own workspace: (workspace, run folder).

    Its seed differs from the later runs', so its backbone differs from any they would build
    themselves: finding its tensors in a later run proves they were carried over.
    """
    ws = tmp_path_factory.mktemp("source-ws")
    info = importer.import_path(tiny_source, ws, name="tiny")
    # Every advanced setting at once, so the trainer's use of them is checked on this run too.
    cfg = RunConfig(dataset_id=info["id"], backbone="mobilenet_v1_0.25", weights="none", seed=7,
                    image_size=32, epochs=2, batch_size=8, patience=0, augment=NO_AUG, optimizer="adamw",
                    schedule="cosine", label_smoothing=0.1, class_weights="balanced", mixed_precision=True,
                    head=HeadConfig(pooling="maxpool_flatten", hidden_units=16, l2=1e-4)).validate()
    run_dir = runs.create_run(cfg, ws)
    training.run(cfg, run_dir)
    return ws, run_dir


def _base_weights(model_path, backbone="mobilenet_v1_0.25"):
    model = modeling.load(model_path)
    return model.get_layer(backbones.base_name(backbones.get(backbone))).get_weights()


def _fresh_base(cfg):
    """The backbone a run with this config builds before any weights are loaded into it."""
    keras.utils.set_random_seed(cfg.seed)
    return modeling.build(cfg, 3)[1].get_weights()


def test_domain_weights_carry_the_earlier_backbone_through_training(source):
    ws, source_dir = source
    cfg = RunConfig(dataset_id=runs.load_config(source_dir).dataset_id, backbone="mobilenet_v1_0.25",
                    strategy="domain_weights", weights="run", source_run=source_dir.name, image_size=40, epochs=1,
                    batch_size=8, patience=0, augment=NO_AUG).validate()
    run_dir = runs.create_run(cfg, ws)
    training.run(cfg, run_dir)
    earlier, now = _base_weights(source_dir / "model.keras"), _base_weights(run_dir / "model.keras")
    assert len(earlier) == len(now)
    for a, b in zip(earlier, now):
        np.testing.assert_array_equal(a, b)  # the frozen backbone is exactly the earlier run's, at another size
    assert any(not np.array_equal(a, b) for a, b in zip(_fresh_base(cfg), now))
    notices = [e["message"] for e in runs.read_events(run_dir) if e["type"] == "notice"]
    assert any(source_dir.name in m and "head is new" in m for m in notices)


def test_weight_init_starts_from_the_early_checkpoint(source):
    ws, source_dir = source
    assert modeling.early_checkpoint_path(source_dir).is_file()
    cfg = RunConfig(dataset_id="d-0123abcd", backbone="mobilenet_v1_0.25", strategy="weight_init", weights="run",
                    source_run=source_dir.name, image_size=32).validate()
    _, base = modeling.build(cfg, 5)  # another number of classes: only the backbone carries over
    modeling.init_from_source(base, cfg, ws)
    _, early = modeling.build(cfg, 3)
    early.load_weights(str(modeling.early_checkpoint_path(source_dir)))
    for a, b in zip(early.get_weights(), base.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(_fresh_base(cfg), base.get_weights()))


def test_earlier_run_strategies_refuse_a_mismatch_with_a_sentence(source, tmp_path):
    ws, source_dir = source
    cfg = RunConfig(dataset_id="d-0123abcd", backbone="small_cnn", strategy="domain_weights", weights="run",
                    source_run=source_dir.name, image_size=32).validate()
    _, base = modeling.build(cfg, 3)
    with pytest.raises(ConfigError, match="set backbone to 'mobilenet_v1_0.25'"):
        modeling.init_from_source(base, cfg, ws)
    (source_dir / "checkpoints" / runs.EARLY_CHECKPOINT).rename(tmp_path / "kept.h5")
    try:
        cfg = cfg.with_changes(backbone="mobilenet_v1_0.25", strategy="weight_init")
        with pytest.raises(RunStateError, match="no early checkpoint"):
            modeling.init_from_source(modeling.build(cfg, 3)[1], cfg, ws)
    finally:
        (tmp_path / "kept.h5").rename(source_dir / "checkpoints" / runs.EARLY_CHECKPOINT)
    assert [s.run_id for s in sources.run_sources(ws)][-1] == source_dir.name


# ---------------------------------------------------------------- the generated script


def test_generated_script_trains_on_tiny_data(tiny, ws, tmp_path):
    cfg = RunConfig(dataset_id=tiny["id"], backbone="small_cnn", weights="none", strategy="fine_tune",
                    fine_tune_unit="groups", fine_tune_layers=1, image_size=32, epochs=1, fine_tune_epochs=1,
                    batch_size=8, patience=1, label_smoothing=0.1, schedule="cosine", optimizer="adamw",
                    head=HeadConfig(pooling="maxpool_flatten", dropout=0.1),
                    augment=AugmentConfig(flip=True, rotate=False)).validate()
    script = tmp_path / "train.py"
    script.write_text(codegen.training_script(cfg, str(datasets.dataset_path(tiny["id"], ws))))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "phase head" in proc.stdout and "phase fine_tune" in proc.stdout and "test accuracy" in proc.stdout
    trained = modeling.load(tmp_path / "trained" / "model.keras")
    assert trained.output_shape == (None, 3)
    assert (tmp_path / "trained" / "labels.txt").read_text().split() == tiny["classes"]


@pytest.mark.parametrize("changes", [
    {"backbone": "resnet50", "strategy": "gradual_unfreeze", "weights": "imagenet", "fine_tune_epochs": 2},
    {"backbone": "densenet121", "strategy": "domain_weights", "weights": "run", "source_run": "20260101-000000-abcdefabcdef"},
    {"backbone": "small_cnn", "strategy": "from_scratch", "weights": "none", "class_weights": "balanced"},
    {"backbone": "hub:https://tfhub.dev/google/bit/m-r50x1/1", "strategy": "weight_init", "weights": "run",
     "source_run": "20260101-000000-abcdefabcdef"},
])
def test_generated_scripts_are_valid_python_for_every_kind(changes, tmp_path):
    cfg = RunConfig(dataset_id="d-0123abcd", image_size=64, **changes).validate()
    script = codegen.training_script(cfg, str(tmp_path))
    compile(script, "train.py", "exec")
    assert "def conv_groups(net" in script and "def apply_phase(base" in script
    for phase in strategies.get(cfg.strategy).phases(cfg):
        assert f"Phase({phase.name!r}" in script
    if strategies.get(cfg.strategy).source:
        assert cfg.source_run in script


# ---------------------------------------------------------------- recommender, class weights, smoothing


@pytest.mark.parametrize("counts, everyday, strategy", [
    ({"a": 8, "b": 30}, True, "feature_extraction"),      # very little data: freeze everything
    ({"a": 8, "b": 30}, False, "feature_extraction"),
    ({"a": 80, "b": 90}, True, "feature_extraction"),     # similar domain
    ({"a": 80, "b": 90}, False, "fine_tune"),             # different domain, some data
    ({"a": 400, "b": 500}, False, "gradual_unfreeze"),    # different domain, plenty of data
    ({"a": 400, "b": 500}, True, "fine_tune"),
    ({"a": 60, "b": 60}, None, "feature_extraction"),
])
def test_recommender_follows_the_rule_and_says_why_in_one_sentence(counts, everyday, strategy):
    rec = strategies.recommend(counts, everyday)
    assert rec.strategy == strategy
    assert rec.reason.endswith(".") and ". " not in rec.reason and strategies.get(strategy).label in rec.reason
    config = RunConfig(dataset_id="d-0123abcd", **rec.overrides()).validate()
    assert config.strategy == strategy and config.weights == "imagenet"


def test_recommender_prefers_cached_weights_and_notes_imbalance():
    rec = strategies.recommend({"a": 30, "b": 300}, True, cached=["efficientnet_b0"])
    assert rec.backbone == "efficientnet_b0" and "uneven" in rec.reason
    assert strategies.recommend({"a": 30, "b": 30}, True).backbone == "mobilenet_v2_1.0"


def test_class_weights_setting():
    even, uneven = [0] * 10 + [1] * 11, [0] * 30 + [1] * 10
    assert strategies.class_weights("auto", even) is None
    weights = strategies.class_weights("auto", uneven)
    assert weights[1] > weights[0] and weights[1] * 10 == pytest.approx(weights[0] * 30)
    assert strategies.class_weights("balanced", even) is not None
    assert strategies.class_weights("none", uneven) is None


def test_label_smoothing_loss_matches_one_hot_crossentropy():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype="float32")
    labels = np.array([0, 2])
    ours = layers.get("SmoothedSparseCrossentropy")(0.2)(labels, probs)
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(np.eye(3)[labels], probs)
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_mixed_precision_without_a_gpu_says_so_and_stays_float32():
    notes = modeling.use_precision(RunConfig(dataset_id="d-0123abcd", mixed_precision=True))
    assert notes and "needs a GPU" in notes[0]
    assert keras.mixed_precision.global_policy().name == "float32"


# ---------------------------------------------------------------- the command line


def test_cli_config_recommend_and_code(source, capsys, tmp_path):
    import json


    ws, source_dir = source
    dataset = runs.load_config(source_dir).dataset_id
    args = ["--workspace", str(ws), "--json"]
    assert main(["config", "--dataset", dataset, "--strategy", "domain_weights", "--source-run", source_dir.name,
                 "--image-size", "32", "--schedule", "plateau", "--pooling", "maxpool_flatten", *args[:2]]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["backbone"], cfg["weights"], cfg["source_run"]) == ("mobilenet_v1_0.25", "run", source_dir.name)
    assert (cfg["schedule"], cfg["head"]["pooling"]) == ("plateau", "maxpool_flatten")
    assert main(["config", "--dataset", dataset, "--strategy", "gradual_unfreeze", *args[:2]]) == 0
    assert json.loads(capsys.readouterr().out)["fine_tune_epochs"] >= 1
    assert main(["recommend", "--dataset", dataset, "--everyday", "no", *args]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["strategy"] == "feature_extraction" and rec["reason"].endswith(".")  # 12 images per class
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert main(["code", str(path), *args[:2]]) == 0
    script = capsys.readouterr().out
    compile(script, "train.py", "exec")
    assert str(source_dir / "model.keras") in script
    assert main(["backbones", "--runs", *args]) == 0
    assert source_dir.name in [r["run_id"] for r in json.loads(capsys.readouterr().out)]


def test_training_with_every_advanced_setting(source):
    _, run_dir = source  # trained with AdamW, cosine decay, label smoothing, balanced class weights, mixed precision
    events = runs.read_events(run_dir)
    assert runs.read_status(run_dir)["state"] == "done"
    assert any("Mixed precision needs a GPU" in e["message"] for e in events if e["type"] == "notice")
    assert modeling.early_checkpoint_path(run_dir).is_file()
    model = modeling.load(run_dir / "model.keras")
    assert model.get_layer("pool").__class__.__name__ == "Sequential"  # 2x2 max pool, then flatten
    assert model.get_layer("hidden").kernel_regularizer is not None
