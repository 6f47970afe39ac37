"""The backbone zoo: every Keras application is registered with its data, groups come from the graph,
preprocessing matches Keras's own, TF Hub works from a local SavedModel, offline says so in a sentence.

Only small networks are built, at tiny sizes; the registry's per-spec data is checked without building.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from core.cli import main
from core.engine import facts, layers, modeling, networks, training
from core.errors import WeightsUnavailable
from core.spec import backbones
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs


def test_every_keras_application_of_tf_keras_is_registered():
    import tf_keras.applications as apps

    constructors = {name for name in dir(apps) if name[0].isupper() and callable(getattr(apps, name))}
    assert constructors and constructors <= set(backbones.KERAS_APPLICATIONS)
    for name in ("VGG16", "ResNet152V2", "InceptionResNetV2", "NASNetLarge", "EfficientNetV2L", "ConvNeXtXLarge"):
        assert name in backbones.KERAS_APPLICATIONS


# TF Hub models in the registry (YAMNet) are not built in advance: they have no measured figures; nor are text encoders.
@pytest.mark.parametrize("spec", [s for s in backbones.BACKBONES.values() if not s.hub_handle and s.kind != "text"],
                         ids=lambda s: s.id)
def test_every_spec_has_its_data_without_building(spec):
    assert spec.min_size <= spec.default_size <= spec.max_size
    assert spec.preprocessing in backbones.PREPROCESSING
    assert spec.params_m > 0 and 0 < spec.base_params_m <= spec.params_m and spec.size_mb > 0
    assert spec.gflops > 0 and spec.ms_per_image > 0
    groups = spec.groups
    assert len(groups) >= 3 and groups[0]["name"] == "stem"
    assert all(g["layers"] > 0 and g["params"] > 0 for g in groups)
    assert sum(g["params"] for g in groups) == spec.facts["base_params"]  # every parameter is in one group
    if "imagenet" in spec.weights_options:
        assert spec.top1 and 45 < spec.top1 < 90
        assert spec.weights_candidates(spec.default_size) and spec.top_weights_files(backbones.classifier_size(spec))
        for wf in spec.weights_candidates(spec.default_size):
            assert wf.url.startswith("https://") and wf.name.endswith(".h5")


def test_tiers_filter_the_zoo():
    fast = [s for s in backbones.BACKBONES.values() if backbones.in_tier(s, "fast")]
    accurate = [s for s in backbones.BACKBONES.values() if backbones.in_tier(s, "accurate")]
    assert backbones.get("mobilenet_v2_0.35") in fast and backbones.get("convnext_xlarge") not in fast
    assert accurate and all(s.top1 >= 82 for s in accurate)
    assert max(s.gflops for s in fast) < min(s.gflops for s in accurate)


@pytest.mark.parametrize("backbone_id", ["mobilenet_v1_0.25", "mobilenet_v2_0.35", "resnet50", "small_cnn"])
def test_groups_found_from_the_graph_match_the_stored_ones_at_any_size(backbone_id):
    spec = backbones.get(backbone_id)
    net = networks.make_network(spec, 32)  # stored at the default size; the structure does not change
    groups = modeling.conv_groups(net)
    assert facts.group_facts(groups) == spec.groups
    # Every layer (but the input placeholder) is in exactly one group; groups follow the network upwards.
    flat = [layer for g in groups for layer in g]
    assert sorted(map(id, flat)) == sorted(id(layer) for layer in net.layers[1:])
    order = {id(layer): i for i, layer in enumerate(net.layers)}
    assert [order[id(g[0])] for g in groups] == sorted(order[id(g[0])] for g in groups)


def test_resnet_groups_end_at_add_layers():
    net = networks.make_network(backbones.get("resnet50"), 32)
    groups = modeling.conv_groups(net)
    blocks = []
    for group in groups[1:]:
        last = group[-1]
        feeding = [n.layer for node in last.inbound_nodes for n in node.parent_nodes]
        assert type(last).__name__ == "Add" or [type(x).__name__ for x in feeding] == ["Add"], last.name
        blocks.append(sum(type(layer).__name__ == "Add" for layer in group))
    assert blocks == [3, 4, 6, 3]  # ResNet-50's residual blocks per stage, never split
    assert not any(type(layer).__name__ == "Add" for layer in groups[0])  # the stem holds no block


@pytest.mark.parametrize("kind, module", [("torch", "densenet"), ("caffe", "resnet50"), ("minus_one_to_one", "mobilenet_v2")])
def test_preprocessing_matches_keras_own(kind, module):
    import importlib

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    ours = layers.preprocessing_layer(kind)(pixels).numpy()
    keras_own = importlib.import_module(f"tf_keras.applications.{module}").preprocess_input(pixels.copy())
    np.testing.assert_allclose(ours, keras_own, rtol=1e-4, atol=1e-4)


def test_per_image_standardisation_removes_each_pictures_colour_and_brightness(tmp_path):
    """The from-scratch fallback's preprocessing: a darker, tinted copy of a picture reaches the network as the
    same input (mean 0, spread 1 per picture), and a saved model keeps the layer."""
    import tf_keras as keras

    assert backbones.get("small_cnn").preprocessing == "per_image"
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 200, (2, 8, 8, 3)).astype("float32")
    shifted = pixels * 0.5 + 40.0  # dimmer and lighter: the same shapes
    layer = layers.preprocessing_layer("per_image")
    out = layer(pixels).numpy()
    np.testing.assert_allclose(out, layer(shifted).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.reshape(2, -1).mean(1), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.reshape(2, -1).std(1), 1.0, atol=1e-3)
    assert not np.allclose(out[0], out[1])  # each picture by its own statistics

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, layers.preprocessing_layer("per_image")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", custom_objects=layers.custom_objects())
    np.testing.assert_allclose(loaded.predict(pixels, verbose=0), out, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- TF Hub


def _saved_model(path):
    """A tiny image feature-vector SavedModel in TF Hub's reusable format (8 features per image)."""
    w = tf.Variable(tf.random.stateless_normal([3, 8], seed=[1, 2]))
    root = tf.train.Checkpoint(w=w)
    root.variables, root.trainable_variables, root.regularization_losses = [w], [w], []

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def features(images):
        return tf.nn.relu(tf.matmul(tf.reduce_mean(images, axis=[1, 2]), w) + 1.0)

    root.__call__ = features
    tf.saved_model.save(root, str(path))
    return path


def test_a_local_tf_hub_savedmodel_trains_and_loads_back(tiny, ws, tmp_path):
    folder = _saved_model(tmp_path / "my hub model")
    cfg = RunConfig(dataset_id=tiny["id"], backbone=backbones.hub_id(str(folder)), image_size=32, epochs=1,
                    batch_size=8, patience=0, augment=AugmentConfig(flip=False, rotate=False)).validate()
    spec = backbones.get(cfg.backbone)
    assert spec.family == "hub" and backbones.cached_weights(spec, 32) == folder
    assert backbones.group_count(cfg.backbone) == 1
    run_dir = runs.create_run(cfg, ws)
    result = training.run(cfg, run_dir)
    assert result["state"] == "done" and runs.load_config(run_dir).backbone == cfg.backbone
    model = modeling.load(run_dir / "model.keras")
    probs = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert ws / "cache" / "tfhub" == backbones.hub_cache_dir(ws)


def test_tf_hub_offline_is_a_clear_sentence(tiny, ws, tmp_path):
    handle = backbones.HUB_MODELS[0].handle
    backbones.use_hub_cache(ws)
    with pytest.raises(WeightsUnavailable, match="offline, so the TF Hub model .* cannot be downloaded"):
        networks.fetch_weights(backbones.get(backbones.hub_id(handle)), 224)
    with pytest.raises(WeightsUnavailable, match="does not hold a TensorFlow SavedModel"):
        networks.fetch_weights(backbones.get(backbones.hub_id(str(tmp_path))), 224)
    cfg = RunConfig(dataset_id=tiny["id"], backbone=backbones.hub_id(handle), image_size=64).validate()
    resolved, notes = training.resolve_weights(cfg)
    assert resolved.backbone == "small_cnn" and "offline" in notes[0]


# ---------------------------------------------------------------- what the pretrained model sees


def test_pretrained_guesses_need_the_classifier_weights_and_say_so(_isolated_home):
    with pytest.raises(WeightsUnavailable, match=r"ImageNet classifier of MobileNet V1 \(width 0.25\).*cannot be downloaded"):
        modeling.pretrained_guesses("mobilenet_v1_0.25", [b""])


def test_pretrained_guesses_name_three_imagenet_labels(_isolated_home, monkeypatch):
    from PIL import Image
    from tf_keras.src.applications import imagenet_utils  # where decode_predictions keeps the class names

    spec = backbones.get("mobilenet_v1_0.25")
    cache = backbones.keras_models_dir()
    cache.mkdir(parents=True)
    # Stand-ins for the downloads: random classifier weights and 1,000 made-up class names.
    net = networks.make_network(spec, backbones.classifier_size(spec), include_top=True)
    net.save_weights(str(cache / spec.top_weights_files(backbones.classifier_size(spec))[0].name))
    index = {str(i): [f"n{i:08d}", f"thing_{i}"] for i in range(1000)}
    (cache / backbones.CLASS_INDEX.name).write_text(json.dumps(index))
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", index)
    import io

    buf = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(buf, "PNG")
    guesses = modeling.pretrained_guesses(spec.id, [buf.getvalue(), buf.getvalue()])
    assert len(guesses) == 2 and [len(g) for g in guesses] == [3, 3]
    assert all(g["label"].startswith("thing ") for g in guesses[0])
    assert guesses[0][0]["probability"] >= guesses[0][1]["probability"] >= guesses[0][2]["probability"]


def test_cli_lists_tiers_and_tf_hub_models(capsys):

    assert main(["backbones", "--tier", "accurate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["imagenet_top1"] >= 82 and "accurate" in r["tiers"] for r in rows)
    assert {"gflops", "ms_per_image", "groups", "preprocessing", "imagenet_cached"} <= set(rows[0])
    assert main(["backbones", "--hub", "--json"]) == 0
    assert all(r["id"].startswith("hub:https://") for r in json.loads(capsys.readouterr().out))
