"""Transfer across architectures: shared-layer matching, the frozen first phase, distillation and its teacher."""

import json
import shutil

import numpy as np
import pytest

from core.engine import distill, modeling, networks, training, transfer
from core.errors import ConfigError
from core.spec import strategies
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs
from tests.conftest import SHARED

MOBILENET_WEIGHTS = SHARED / "keras-cache" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
NO_AUG = AugmentConfig(flip=False, rotate=False)


def _net(name, second_conv: int, dense: int):
    import tf_keras as keras
    from tf_keras import layers as kl

    inputs = keras.Input((8, 8, 3))
    x = kl.Conv2D(4, 3, name="stem")(inputs)
    x = kl.BatchNormalization(name="stem_bn")(x)
    x = kl.Conv2D(second_conv, 3, name="block")(x)
    x = kl.GlobalAveragePooling2D()(x)
    x = kl.Dense(dense, name="top")(x)
    return keras.Model(inputs, x, name=name)


def test_shared_layers_are_copied_byte_for_byte_and_other_shapes_are_difference_layers():
    source = _net("a", second_conv=6, dense=5)
    target = _net("b", second_conv=8, dense=5)  # "block" has the same name but another shape
    rows = transfer.match(source, target)
    by_name = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == ["stem", "stem_bn", "block", "top"]
    assert by_name["stem"]["shared"] and by_name["stem_bn"]["shared"]
    assert not by_name["block"]["shared"] and "other weight shapes" in by_name["block"]["why"]
    assert not by_name["top"]["shared"]  # 8 inputs now, not 6: another kernel shape
    block_before = [w.copy() for w in target.get_layer("block").get_weights()]
    assert transfer.copy_shared(source, target, rows) == 2
    for name in ("stem", "stem_bn"):
        for a, b in zip(source.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            assert a.tobytes() == b.tobytes()
    for a, b in zip(block_before, target.get_layer("block").get_weights()):
        assert a.tobytes() == b.tobytes()  # a difference layer keeps its own weights
    report = transfer.summarise(rows, {"label": "A"}, {"label": "B"})
    shared = sum(by_name[n]["params"] for n in ("stem", "stem_bn"))
    assert report["shared_params"] == shared
    assert report["share"] == round(shared / sum(r["params"] for r in rows), 4)
    assert report["sentence"].startswith(f"{report['share']:.0%} of B's weights come from A")


def test_nothing_shared_says_so_and_suggests_distillation():
    import tf_keras as keras
    from tf_keras import layers as kl

    inputs = keras.Input((4,))
    other = keras.Model(inputs, kl.Dense(2, name="elsewhere")(inputs))
    report = transfer.summarise(transfer.match(other, _net("b", 8, 5)), {"label": "A"}, {"label": "B"})
    assert report["share"] == 0 and "no layer in common" in report["sentence"] and "distill" in report["sentence"]


def test_first_phase_trains_difference_layers_and_keeps_shared_ones_frozen():
    import tf_keras as keras
    from tf_keras import layers as kl

    net = _net("b", second_conv=8, dense=5)
    inputs = keras.Input((8, 8, 3))
    base = keras.Model(inputs, net(kl.Identity(name="preprocess")(inputs)), name="base")
    model = keras.Sequential([base, kl.Dense(3, activation="softmax")])
    shared = {"stem", "stem_bn"}
    phase = strategies.get("layer_transfer").phases(RunConfig("d", strategy="layer_transfer", source_backbone="small_cnn"))[0]
    modeling.apply_phase(base, phase)
    transfer.apply_phase(base, phase, shared, RunConfig("d", weights="none"))
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in net.layers if layer.weights}
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 8, 8, 3)), rng.integers(0, 3, 16), epochs=2, verbose=0)
    for layer in net.layers:
        if not layer.weights:
            continue
        same = all(np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))
        assert same == (layer.name in shared), layer.name  # BatchNorm statistics included


def _train(ws, cfg):
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    return run_dir


def _small(tiny, **changes) -> RunConfig:
    base = RunConfig(dataset_id=tiny["id"], backbone="small_cnn", weights="none", strategy="from_scratch",
                     image_size=32, epochs=1, batch_size=8, patience=0, augment=NO_AUG, val_fraction=0.2,
                     test_fraction=0.2)
    return base.with_changes(**changes).validate()


def test_layer_transfer_from_a_run_keeps_the_copied_layers_through_the_first_phase(tiny, ws):
    source_dir = _train(ws, _small(tiny))
    cfg = _small(tiny, strategy="layer_transfer", source_run=source_dir.name, fine_tune_epochs=0)
    run_dir = _train(ws, cfg)
    report = json.loads((run_dir / transfer.REPORT).read_text())
    assert report["share"] == 1.0 and report["difference"] == []
    source = modeling.network(modeling.load(source_dir / "model.keras").get_layer("base_small_cnn"))
    trained = modeling.network(modeling.load(run_dir / "model.keras").get_layer("base_small_cnn"))
    for a, b in zip(source.get_weights(), trained.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_distillation_loss_equals_the_hand_computed_value():
    t, a = 4.0, 0.7
    student_logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    teacher_logits = np.array([[3.0, 0.0, -2.0], [-1.0, 1.0, 2.0]])
    labels = np.array([0, 1])

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    ps, pt = softmax(student_logits / t), softmax(teacher_logits / t)
    kl = (pt * np.log(pt / ps)).sum(axis=1)
    ce = -np.log(softmax(student_logits)[np.arange(2), labels])
    expected = a * kl * t * t + (1 - a) * ce
    y_true = distill.pack(labels, softmax(teacher_logits))
    got = distill.distillation_loss(t, a)(y_true.astype(np.float32), softmax(student_logits).astype(np.float32))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
    np.testing.assert_allclose(distill.soften(softmax(teacher_logits), t), pt, rtol=1e-9)


def _counting_teacher(monkeypatch) -> dict:
    """Count the images the teacher is run on."""
    seen = {"images": 0}
    real_load = distill.load_teacher

    def counting(config, ws_, classes):
        teacher = real_load(config, ws_, classes)
        predict = teacher.predict

        def count(x):
            seen["images"] += int(x.shape[0])
            return predict(x)

        teacher.predict = count
        return teacher

    monkeypatch.setattr(distill, "load_teacher", counting)
    return seen


def test_the_teacher_runs_once_per_image_and_distillation_trains(tiny, ws, monkeypatch):
    teacher_dir = _train(ws, _small(tiny))
    seen = _counting_teacher(monkeypatch)
    cfg = _small(tiny, strategy="distill", source_run=teacher_dir.name, epochs=2, compare_student_alone=True)
    run_dir = runs.create_run(cfg, ws)
    result = training.train_and_compare(cfg, run_dir)
    report = json.loads((run_dir / distill.REPORT).read_text())
    assert [r["role"] for r in report["rows"]] == ["teacher", "student_alone", "distilled"]
    assert all(r["ms_per_image"] > 0 and r["size_mb"] > 0 and r["params"] > 0 for r in report["rows"])
    assert "Trained alone with the same budget" in report["verdict"]
    alone = runs.load_config(runs.run_path(result["student_alone_run"], ws))
    assert (alone.strategy, alone.source_run, alone.epochs) == ("from_scratch", "", cfg.epochs)
    split = json.loads((teacher_dir / "split.json").read_text())
    assert seen["images"] == len(split["train"]) + len(split["val"])  # every training and validation image, once
    _train(ws, cfg.with_changes(epochs=1, compare_student_alone=False))  # a second student: all from the cache
    assert seen["images"] == len(split["train"]) + len(split["val"])
    assert (run_dir / "eval.json").is_file()


@pytest.mark.skipif(not MOBILENET_WEIGHTS.is_file(), reason="../shared/keras-cache is not beside the project")
def test_a_frozen_student_learns_from_cached_augmented_views(tiny, ws, monkeypatch, _isolated_home):
    models = _isolated_home / ".keras" / "models"
    models.mkdir(parents=True)
    shutil.copy(MOBILENET_WEIGHTS, models)
    teacher_dir = _train(ws, _small(tiny))
    split = json.loads((teacher_dir / "split.json").read_text())
    seen = _counting_teacher(monkeypatch)
    # A pretrained student: its head trains on cached features of two augmented views, with the teacher's
    # answers on the very same pixels, computed once.
    cfg = _small(tiny, backbone="mobilenet_v1_0.25", weights="imagenet", strategy="distill", image_size=96,
                 source_run=teacher_dir.name, augment=AugmentConfig(flip=True, rotate=False), augment_views=2)
    for _ in range(2):
        run_dir = _train(ws, cfg)
        assert seen["images"] == len(split["train"]) * 2 + len(split["val"])
    assert runs.load_config(run_dir).weights == "imagenet"
    kinds = [e.get("message", "") for e in runs.read_events(run_dir) if e["type"] == "notice"]
    assert any("0 computed now" in m for m in kinds)


def _lopsided_teacher(size: int, classes: int) -> distill.Teacher:
    """A teacher whose answers change when an image is mirrored (a dense layer on the raw pixels)."""
    import tf_keras as keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    return distill.Teacher("t", None, size, [], "", lambda b: np.asarray(model.predict_on_batch(b)), "t", model)


def test_the_teacher_answers_the_same_augmented_view_the_student_sees(tiny):
    """Function matching: with augmentation on, the teacher's answer is on the flipped image the student sees,
    not on the clean one (what the cache holds); while validating both see the clean image."""
    import tensorflow as tf

    cfg = _small(tiny, augment=AugmentConfig(flip=True, rotate=False))
    student, _ = modeling.build(cfg, 3)
    teacher = _lopsided_teacher(16, 3)  # another size: the teacher gets the view resized to its own
    trainer = distill.paired_trainer(student, teacher)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    small = tf.image.resize(x, (16, 16))
    clean, mirrored = teacher.predict(small), teacher.predict(tf.image.flip_left_right(small))
    assert np.abs(clean - mirrored).max() > 1e-3  # the test can tell the two apart
    seen = np.asarray(trainer(x, training=True))[:, 3:]
    flipped = [np.allclose(row, m, atol=1e-5) and not np.allclose(row, c, atol=1e-5)
               for row, c, m in zip(seen, clean, mirrored)]
    assert all(f or np.allclose(row, c, atol=1e-5) for f, row, c in zip(flipped, seen, clean))
    assert any(flipped) and not all(flipped)  # RandomFlip mirrored some images, and their teacher saw them so
    np.testing.assert_allclose(np.asarray(trainer(x, training=False))[:, 3:], clean, atol=1e-5)
    # The student half is the student itself: its weights, and what it says on the clean image.
    np.testing.assert_allclose(np.asarray(trainer(x, training=False))[:, :3], student(x, training=False), atol=1e-5)
    assert distill.paired_trainer(modeling.build(_small(tiny), 3)[0], teacher) is None  # no augmentation, no pair


def test_an_augmented_student_trains_beside_its_teacher(tiny, ws, monkeypatch):
    teacher_dir = _train(ws, _small(tiny))
    seen = _counting_teacher(monkeypatch)
    cfg = _small(tiny, strategy="distill", source_run=teacher_dir.name, epochs=2,
                 augment=AugmentConfig(flip=True, rotate=True))
    run_dir = _train(ws, cfg)
    split = json.loads((teacher_dir / "split.json").read_text())
    assert seen["images"] == len(split["val"])  # no cached answers on clean training images: they would be wrong
    notices = [e.get("message", "") for e in runs.read_events(run_dir) if e["type"] == "notice"]
    assert any("as the student sees it" in m for m in notices)
    losses = [e["metrics"]["loss"] for e in runs.read_events(run_dir) if e["type"] == "epoch_end"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert (run_dir / "eval.json").is_file()


def test_distillation_streams_images_through_the_runs_own_pipeline(tiny, ws, monkeypatch):
    """No second copy of the tf.data pipeline: the packed labels ride on core.data.tfdata.pipeline."""
    from core.data import tfdata
    from core.store import datasets

    assert not hasattr(distill, "_image_dataset")
    root = datasets.dataset_path(tiny["id"], ws)
    items = [(rel, i) for i, c in enumerate(tiny["classes"]) for rel in tiny["images"][c]][:6]
    packed = distill.pack(np.array([y for _, y in items]), np.full((6, len(tiny["classes"])), 0.5))
    plain = list(tfdata.pipeline(root, items, 16, 4, True, 3).unbatch())
    carried = list(tfdata.pipeline(root, items, 16, 4, True, 3, targets=(packed, np.arange(6.0))).unbatch())
    order = [int(w) for _, _, w in carried]
    assert sorted(order) == list(range(6))
    for (image, label), (same_image, row, w) in zip(plain, carried):  # the same shuffle, the same pixels
        np.testing.assert_array_equal(image.numpy(), same_image.numpy())
        np.testing.assert_array_equal(row.numpy(), packed[int(w)])
        assert int(label) == items[int(w)][1]
    calls = []
    real = tfdata.pipeline
    monkeypatch.setattr(tfdata, "pipeline", lambda *a, **k: calls.append(k.get("targets")) or real(*a, **k))
    teacher_dir = _train(ws, _small(tiny))
    cfg = _small(tiny, strategy="distill", source_run=teacher_dir.name, epochs=1, backbone="small_cnn",
                 weights="none")
    assert training.run(cfg, runs.create_run(cfg, ws))["state"] == "done"
    assert any(t is not None for t in calls)  # the student's images came with the teacher's answers


def test_the_exported_distill_script_loads_a_tf_hub_teacher(tiny, ws, tmp_path):
    import tensorflow as tf

    from core.ship import codegen
    from core.spec import backbones
    from core.store import datasets

    w = tf.Variable(tf.random.stateless_normal([3, 8], seed=[1, 2]))  # a tiny TF Hub feature-vector SavedModel
    root = tf.train.Checkpoint(w=w)
    root.variables, root.trainable_variables, root.regularization_losses = [w], [w], []
    root.__call__ = tf.function(lambda images: tf.nn.relu(tf.matmul(tf.reduce_mean(images, axis=[1, 2]), w) + 1.0),
                                input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    tf.saved_model.save(root, str(tmp_path / "hub_teacher"))
    teacher_dir = _train(ws, _small(tiny, backbone=backbones.hub_id(str(tmp_path / "hub_teacher")), weights="imagenet",
                                    strategy="feature_extraction"))
    folder = datasets.dataset_path(tiny["id"], ws)
    script = codegen.training_script(_small(tiny, strategy="distill", source_run=teacher_dir.name), str(folder), ws=ws)
    assert "TEACHER_HUB = True" in script and "import tensorflow_hub as hub" in script
    assert "test accuracy" in _run_script(script, folder, tmp_path)


def test_a_teacher_with_other_classes_is_refused_with_a_sentence(tiny, ws):
    teacher_dir = runs.create_run(_small(tiny), ws)  # a finished run folder; the classes are checked first
    (teacher_dir / "split.json").write_text(json.dumps({"classes": tiny["classes"], "train": [], "val": [], "test": []}))
    (teacher_dir / "model.keras").write_bytes(b"never loaded")
    runs.update_status(teacher_dir, "done")
    cfg = _small(tiny, strategy="distill", source_run=teacher_dir.name)
    with pytest.raises(ConfigError, match="a teacher must know exactly the student's classes"):
        distill.load_teacher(cfg, ws, ["cats", "dogs"])
    with pytest.raises(ConfigError, match="learns from a teacher"):
        _small(tiny, strategy="distill")


def _run_script(script: str, folder, tmp_path) -> str:
    import os
    import subprocess
    import sys

    path = tmp_path / "train.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path), str(folder), str(tmp_path / "trained")], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_exported_scripts_distill_and_transfer_layers_on_their_own(tiny, ws, tmp_path):
    from core.ship import codegen
    from core.store import datasets

    teacher_dir = _train(ws, _small(tiny))
    folder = datasets.dataset_path(tiny["id"], ws)
    # With augmentation: the script's teacher answers the augmented view its student sees, as the app's does.
    distilled = codegen.training_script(_small(tiny, strategy="distill", source_run=teacher_dir.name,
                                               augment=AugmentConfig(flip=True, rotate=False)), str(folder), ws=ws)
    assert "def train_step(self, data):" in distilled and "TEMPERATURE = 4.0" in distilled
    assert "x = self.augmenter(x, training=True)" in distilled
    assert "test accuracy" in _run_script(distilled, folder, tmp_path)
    grown = codegen.training_script(_small(tiny, strategy="layer_transfer", source_run=teacher_dir.name,
                                           fine_tune_epochs=1), str(folder), ws=ws)
    out = _run_script(grown, folder, tmp_path)
    weighted = sum(1 for layer in networks.small_cnn((32, 32, 3)).layers if layer.weights)
    assert f"{weighted} shared layers copied" in out and "test accuracy" in out
    # A small_cnn teacher's model.keras holds its per-image standardisation layer: a student of another kind of
    # network gets the layer's class in its script too, or the teacher would not load.
    other = codegen.training_script(_small(tiny, strategy="distill", source_run=teacher_dir.name,
                                           backbone="mobilenet_v1_0.25"), str(folder), ws=ws)
    compile(other, "train.py", "exec")
    assert "class PerImageStandardize(" in other and 'PerImageStandardize(name="preprocess")' not in other
