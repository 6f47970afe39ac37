"""Pruning: the asked sparsity is reached on the prunable layers (nested ones too), the wrappers are stripped,
and the pruned child is a complete run folder that evaluation and export accept.

One small CNN is trained once for the module on the tiny generated dataset; the nested-backbone
and no-prunable-layer cases use small models built in the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import cli
from core.engine import evaluation, modeling
from core.errors import PruningError
from core.service import jobs
from core.ship import pruning, runfiles
from core.store import runs
from tests.conftest import trained_small_cnn


@pytest.fixture(scope="module")
def parent(tmp_path_factory, tiny_source) -> Path:
    """A finished small-CNN run (from scratch, 32 px) on 3 classes x 12 images."""
    return trained_small_cnn(tmp_path_factory.mktemp("workspace"), tiny_source)


@pytest.fixture(scope="module")
def child(parent) -> Path:
    child_dir, result = pruning.prune_run(parent, 0.6, epochs=2)
    assert result["state"] == "done"
    return child_dir


def _zeros(model) -> dict[str, float]:
    layers = {layer.name: layer for layer in pruning._flat_layers(model)}
    return {name: float(np.mean(layers[name].kernel.numpy() == 0)) for name in layers if pruning._prunable(layers[name])}


def test_asked_sparsity_is_reached_with_the_smallest_layers_kept_dense(parent, child):
    model = modeling.load(child / "model.keras")
    reached = pruning.sparsity_by_kind(model)
    assert set(reached["kinds"]) == {"Conv2D", "Dense"}
    assert abs(reached["prunable_sparsity"] - 0.6) <= 0.01
    assert reached["nonzero_parameters"] < reached["parameters"]
    sizes = {layer.name: layer.kernel.shape.num_elements() for layer in pruning._flat_layers(model)
             if pruning._prunable(layer)}
    zeros = _zeros(model)
    # The small CNN's stem convolution (864 weights) and its 3-class head (768) hold little and stay whole; at 60 %
    # (not strong pruning) the larger convolutions carry their zeros evenly, a little over 60 % each.
    assert zeros.pop("stem_conv") == 0.0 and zeros.pop("predictions") == 0.0
    planned = pruning.layer_sparsities(runfiles.load_model(parent), 0.6)
    assert set(planned) == set(zeros) and len(zeros) >= 4 and all(sizes[name] >= pruning.DENSE_BELOW for name in zeros)
    for name, share in zeros.items():
        assert 0.6 < share <= 0.61 and abs(share - planned[name]) <= 0.005, (name, share)


def _pruned_kernels(model, names) -> dict:
    layers = {layer.name: layer for layer in pruning._flat_layers(model)}
    return {name: layers[name].kernel.numpy() for name in names}


def test_pruned_layers_share_a_few_values_with_their_zeros_kept(parent, child):
    # Weight clustering after pruning (the default): each pruned layer's non-zero weights take at most 16 values,
    # while its share of zeros is the one pruning left. The parent's layers have thousands of values each.
    assert runs.read_status(child)["clusters"] == pruning.DEFAULT_CLUSTERS == 16
    planned = pruning.layer_sparsities(runfiles.load_model(parent), 0.6)
    kernels = _pruned_kernels(modeling.load(child / "model.keras"), planned)
    assert len(kernels) >= 4
    for name, kernel in kernels.items():
        assert len(np.unique(kernel[kernel != 0])) <= 16, name
        assert abs(float(np.mean(kernel == 0)) - planned[name]) <= 0.01, name
    before = _pruned_kernels(modeling.load(parent / "model.keras"), planned)
    assert all(len(np.unique(k)) > 1000 for k in before.values())


def test_layer_sparsities_skip_small_and_depthwise_layers_and_respect_the_cap(monkeypatch):
    import tf_keras as keras

    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)  # 288 weights
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.Conv2D(256, 1, name="pointwise")(x)  # 2048 weights
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(x))  # 2560 weights
    total = 288 + 2048 + 2560
    shares = pruning.layer_sparsities(model, 0.5)
    assert set(shares) == {"pointwise", "head"}  # the depthwise kernel is not prunable; the stem is under 2000
    assert shares["pointwise"] == shares["head"] == pytest.approx(0.5 * total / (2048 + 2560))
    # When the large layers cannot hold all the zeros under the cap, the largest small layer is pruned too.
    monkeypatch.setattr(pruning, "MAX_LAYER_SPARSITY", 0.55)
    assert set(pruning.layer_sparsities(model, 0.53)) == {"stem", "pointwise", "head"}
    assert pruning.layer_sparsities(model, 0.53)["head"] == pytest.approx(0.53)


def test_strong_pruning_gives_the_largest_layer_the_zeros_it_can_hold():
    import tf_keras as keras

    inputs = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(128, 1, name="narrow")(inputs)  # 2048 weights
    x = keras.layers.Conv2D(256, 1, name="wide")(x)  # 32768 weights
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(x))  # 2560 weights
    sizes = {"narrow": 2048, "wide": 32768, "head": 2560}
    total = sum(sizes.values())
    # At 50 % the zeros are shared evenly.
    assert pruning.layer_sparsities(model, 0.5) == {name: pytest.approx(0.5) for name in sizes}
    # Above 70 %, Erdős-Rényi-Kernel keeps a share of each layer in proportion to (sum of its dimensions / its
    # size): the wide layer's is 6 to 9 times smaller than the others', so it takes the most zeros.
    shares = pruning.layer_sparsities(model, 0.75)
    assert set(shares) == {"narrow", "wide"} and shares["wide"] > 0.8 > shares["narrow"]  # the head stays whole
    assert shares["wide"] * sizes["wide"] + shares["narrow"] * sizes["narrow"] == pytest.approx(0.75 * total)
    shares = pruning.layer_sparsities(model, 0.9)
    assert shares["wide"] > shares["narrow"] > shares["head"] and max(shares.values()) <= pruning.MAX_LAYER_SPARSITY
    assert sum(shares[name] * size for name, size in sizes.items()) == pytest.approx(0.9 * total)


def test_the_sparsity_ramp_ends_after_its_share_of_the_epochs():
    assert pruning.schedule_steps(13, 10) == (0, 65)  # half of 10 epochs of 13 steps
    assert pruning.schedule_steps(13, 10, pruning.STRONG_RAMP_SHARE) == (0, 39)  # strong pruning: 3 of 10
    assert pruning.schedule_steps(13, 1) == (0, 12)  # one epoch: at its last step


def _teacher_and_batch():
    import tensorflow as tf
    import tf_keras as keras

    inputs = keras.Input((2,))
    teacher = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Dense(3, kernel_initializer="ones")(inputs)))
    teacher.layers[1].set_weights([np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 1.0]], "float32"), np.zeros(3, "float32")])
    x = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    return teacher, x, tf.data.Dataset.from_tensor_slices((x, np.array([0, 2], "int32"))).batch(2)


def test_pruning_learns_from_the_parents_answers():
    teacher, x, data = _teacher_and_batch()
    _, packed = next(iter(pruning.distilled(data, teacher, 3)))
    np.testing.assert_allclose(packed.numpy(), np.c_[[0, 2], teacher(x).numpy()], rtol=1e-6)  # [label, answer]
    _, plain = next(iter(pruning.distilled(data, None, 3)))
    np.testing.assert_allclose(plain.numpy(), np.c_[[0, 2], np.eye(3)[[0, 2]]])
    _, _, weights = next(iter(pruning.distilled(data, None, 3, class_weight={0: 2.0, 1: 1.0, 2: 0.5})))
    np.testing.assert_allclose(weights.numpy(), [2.0, 0.5])


def test_the_parent_answers_the_augmented_view_the_child_sees():
    import tf_keras as keras

    teacher, x, data = _teacher_and_batch()
    mirror = keras.layers.Lambda(lambda v, training=None: v[:, ::-1], name="augmentation")  # a fixed "augmentation"
    seen, packed = next(iter(pruning.distilled(data, teacher, 3, augmenter=mirror)))
    np.testing.assert_allclose(seen.numpy(), x[:, ::-1])
    np.testing.assert_allclose(packed.numpy()[:, 1:], teacher(x[:, ::-1]).numpy(), rtol=1e-6)
    assert not np.allclose(packed.numpy()[:, 1:], teacher(x).numpy(), atol=0.05)  # not the clean image's answer


def test_the_augmentation_moves_out_of_the_classifier_and_nothing_else_changes(parent):
    model = runfiles.load_model(parent)
    student, augmenter = pruning.split_augmentation(model)
    assert augmenter is model.get_layer("augmentation")
    assert "augmentation" not in [layer.name for layer in student.layers]
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(student(images, training=False), model(images, training=False), rtol=1e-5, atol=1e-6)


def test_pruned_child_is_a_complete_run_that_evaluate_and_export_accept(parent, child):
    status = runs.read_status(child)
    assert status["state"] == "done" and status["pruned_from"] == parent.name and status["sparsity"] == 0.6
    for name in ("config.json", "split.json", "model.keras", "eval.json", "events.jsonl", "status.json"):
        assert (child / name).is_file(), name
    assert (child / "split.json").read_text() == (parent / "split.json").read_text()
    assert runs.load_config(child) == runs.load_config(parent)
    epochs = [e for e in runs.read_events(child) if e["type"] == "epoch_end"]
    # Two epochs of pruning, then one of clustering (a third of them, at least one).
    assert [(e["phase"], e["epoch"]) for e in epochs] == [("prune", 1), ("prune", 2), ("cluster", 1)]
    runfiles.check_ready(child)
    again = evaluation.evaluate(child)
    assert again["accuracy"] == pytest.approx(status["test_accuracy"])
    assert child.name in [r.id for r in pruning.children(parent)]

    # The sparse int8 TFLite file runs in LiteRT and is measured against the parent's.
    report = pruning.measure(child, ["tflite-int8"])
    assert set(report["files"]) == {"keras", "tflite", "tflite-int8"}
    int8 = report["files"]["tflite-int8"]
    assert int8["gzip_bytes"] < int8["bytes"] and 0 < int8["gzip_vs_parent"]
    assert 0.0 <= int8["accuracy"] <= 1.0 and int8["ms_per_image"] > 0
    assert report["files"]["keras"]["gzip_vs_parent"] < 0.8  # mostly zeros compress
    assert report["clusters"] == 16
    # The int8 converter keeps the clusters: each output channel of a pruned convolution holds at most 16 distinct
    # non-zero int8 values (the scale is per channel, so each channel maps the 16 shared values its own way).
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(runfiles.exports_dir(child) / int8["file"]),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    feed = interpreter.get_input_details()[0]
    interpreter.set_tensor(feed["index"], np.random.default_rng(0).integers(0, 256, feed["shape"]).astype(feed["dtype"]))
    interpreter.invoke()  # a file in the sparse format makes its dense weights (Densify) when it runs
    planned = pruning.layer_sparsities(runfiles.load_model(parent), 0.6)
    sizes = {k.size for k in _pruned_kernels(modeling.load(child / "model.keras"), planned).values()}
    convs = [d for d in interpreter.get_tensor_details() if len(d["shape"]) == 4 and d["dtype"] == np.int8
             and int(np.prod(d["shape"])) in sizes and len(d["quantization_parameters"]["scales"]) > 1]
    assert len(convs) >= 3
    for d in convs:
        weights = interpreter.get_tensor(d["index"])
        for channel in weights.reshape(weights.shape[0], -1):
            assert len(np.unique(channel[channel != 0])) <= 16, d["name"]
    assert report["change_points"] == pytest.approx(100 * (report["test_accuracy"] - report["parent_test_accuracy"]),
                                                    abs=0.01)
    assert "Depthwise convolutions are not prunable" in report["not_prunable"]
    assert pruning.cached_report(child) == json.loads((child / pruning.REPORT).read_text())


def _nested(keras):
    """A classifier whose backbone is one nested model (conv + BatchNorm inside), called with training=False."""
    inner_in = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="inner_conv")(inner_in)
    x = keras.layers.BatchNormalization(name="inner_bn")(x)
    inner = keras.Model(inner_in, keras.layers.Add(name="skip")([x, keras.layers.Conv2D(8, 1, name="side")(inner_in)]),
                        name="backbone")
    inputs = keras.Input((8, 8, 3), name="image")
    x = inner(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))


def test_nested_backbone_is_pruned_and_stripped_model_has_no_wrappers():
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    model = _nested(keras)
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=3, frequency=1)
    pruned = pruning.wrap_for_pruning(model, schedule)
    assert sorted(pruning.wrappers(pruned)) == ["prune_low_magnitude_inner_conv", "prune_low_magnitude_predictions",
                                                "prune_low_magnitude_side"]
    pruning.freeze_batchnorm(pruned)
    pruned.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    pruned.fit(rng.normal(size=(32, 8, 8, 3)), rng.integers(0, 3, 32), batch_size=8, epochs=1, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = pruning.strip(pruned)
    assert pruning.wrappers(stripped) == []
    fresh = _nested(keras)
    pruning.copy_weights(stripped, fresh)
    kinds = pruning.sparsity_by_kind(fresh)["kinds"]
    # The masks inside the nested backbone were updated too (the outer training=False did not block them).
    assert abs(kinds["Conv2D"]["sparsity"] - 0.5) <= 0.02 and abs(kinds["Dense"]["sparsity"] - 0.5) <= 0.02


def test_a_model_without_prunable_layers_gets_a_sentence():
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    with pytest.raises(PruningError, match="no layer that magnitude pruning can thin out.*DepthwiseConv2D"):
        pruning.wrap_for_pruning(model, tfmot.sparsity.keras.ConstantSparsity(0.5, 0))


def test_bad_requests_are_sentences(parent, capsys):
    ws = parent.parent.parent
    code = cli.main(["prune", parent.name, "--sparsity", "1.5", "--workspace", str(ws)])
    assert code == 2 and "between 0.05 and 0.95" in capsys.readouterr().err
    code = cli.main(["prune", parent.name, "--cluster", "5", "--workspace", str(ws)])
    assert code == 2 and "shares 8, 16, 32, 64 values per layer, or 0 for none, not 5" in capsys.readouterr().err
    with pytest.raises(PruningError, match="1 to 50 epochs"):
        pruning.create_child(parent, 0.5, 0)
    with pytest.raises(PruningError, match="was not made by pruning"):
        pruning.parent_of(parent)


def test_prune_job_is_queued_as_a_new_run(parent, monkeypatch):
    spawned = []
    monkeypatch.setattr(jobs, "_spawn", lambda run_dir, resume, prune=False: spawned.append((run_dir.name, prune)))
    ws = parent.parent.parent
    child_id = jobs.submit_prune(parent.name, 0.7, 3, ws, 8)
    status = runs.read_status(runs.run_path(child_id, ws))
    assert spawned == [(child_id, True)]
    assert (status["state"], status["pruned_from"], status["sparsity"], status["prune_epochs"], status["clusters"]) == (
        "queued", parent.name, 0.7, 3, 8)


def test_a_servers_epoch_cap_holds_for_pruning_too(parent, monkeypatch):
    monkeypatch.setenv("TL_MAX_EPOCHS", "1")
    child_dir, result = pruning.prune_run(parent, 0.5, epochs=3)
    assert result["state"] == "done"
    found = runs.read_events(child_dir)
    # Each phase (pruning, then clustering) fine-tunes at most the capped epoch.
    assert [e["epochs"] for e in found if e["type"] == "phase_start"] == [1, 1]
    assert sum(e["type"] == "epoch_end" for e in found) == 2
    assert any("limits training to 1 epoch(s) per phase" in e.get("message", "") for e in found)
