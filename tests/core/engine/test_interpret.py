"""Grad-CAM points at what decides the class; the embedding view maps a run's dataset and flags suspects."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from core.engine import evaluation, interpret, modeling
from core.spec.config import AugmentConfig, HeadConfig, RunConfig
from core.store import files, runs
from tests.core.engine.test_evaluation import trained_copy

SIZE, SQUARE = 48, 12
COLOURS = [(230, 20, 20), (20, 200, 20), (20, 20, 230)]


def _square_images(n, rng):
    """Noise images whose class is the colour of one square at a random position."""
    x = rng.uniform(60, 190, (n, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, len(COLOURS), n)
    for i in range(n):
        r, c = rng.integers(0, SIZE - SQUARE, 2)
        x[i, r : r + SQUARE, c : c + SQUARE] = COLOURS[y[i]]
    return x, y


def _classifier(inner, size=SIZE, classes=3):
    """A model shaped like modeling.build's: input -> augmentation -> base(preprocess + network) -> pool -> head."""
    import tf_keras as keras
    from tf_keras import layers

    pixels = keras.Input((size, size, 3), name="pixels")
    base = keras.Model(pixels, inner(layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")(pixels)), name="base_test")
    image = keras.Input((size, size, 3), name="image")
    x = keras.Sequential([layers.RandomFlip("horizontal")], name="augmentation")(image)
    x = base(x)
    if len(x.shape) == 4:  # a TF Hub layer hands out pooled features already
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    return keras.Model(image, layers.Dense(classes, activation="softmax", name="predictions")(x))


@pytest.fixture(scope="module")
def square_model():
    """A small CNN trained (about 2 s) until it tells the squares' colours apart."""
    import tf_keras as keras
    from tf_keras import layers

    keras.utils.set_random_seed(0)
    net_in = keras.Input((SIZE, SIZE, 3))
    z = layers.Conv2D(8, 3, padding="same", activation="relu")(net_in)
    z = layers.MaxPooling2D()(z)
    z = layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(z)
    model = _classifier(keras.Model(net_in, z, name="net"))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class StopWhenLearned(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = logs["accuracy"] >= 0.97

    x, y = _square_images(160, np.random.default_rng(0))
    model.fit(x, y, epochs=15, batch_size=16, verbose=0, callbacks=[StopWhenLearned()])
    x_test, y_test = _square_images(60, np.random.default_rng(1))
    assert (model.predict(x_test, verbose=0).argmax(axis=1) == y_test).mean() >= 0.95  # it did learn the task
    return model


@pytest.mark.parametrize("colour, top, left", [(0, 4, 30), (1, 30, 6), (2, 18, 18), (0, 36, 36)])
def test_gradcam_peaks_inside_the_square_that_decides_the_class(square_model, colour, top, left):
    image = np.random.default_rng(colour + top).uniform(60, 190, (SIZE, SIZE, 3)).astype(np.float32)
    image[top : top + SQUARE, left : left + SQUARE] = COLOURS[colour]
    heatmap, index, layer = interpret.gradcam(square_model, image)
    assert index == colour and layer == "last_conv"  # found by walking the layers, not by name
    assert heatmap.shape == (SIZE, SIZE) and heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
    row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert top <= row < top + SQUARE and left <= col < left + SQUARE
    assert heatmap[top : top + SQUARE, left : left + SQUARE].mean() > 2 * heatmap.mean()


@pytest.mark.parametrize("hidden", ["layer", "dense_model"])
def test_gradcam_without_a_reachable_convolution_says_so(hidden):
    import tf_keras as keras
    from tf_keras import layers

    class Opaque(layers.Layer):
        """Like a TF Hub KerasLayer: convolutions inside, but no layers to walk."""

        def __init__(self):
            super().__init__(name="hub_model")
            self.conv, self.pool = layers.Conv2D(4, 3), layers.GlobalAveragePooling2D()

        def call(self, x):
            return self.pool(self.conv(x))

    if hidden == "layer":
        network = Opaque()
    else:
        flat_in = keras.Input((8, 8, 3))
        network = keras.Model(flat_in, layers.Dense(4)(layers.Flatten()(flat_in)), name="net")
    model = _classifier(network, size=8, classes=2)
    with pytest.raises(interpret.ExplanationUnavailable, match="does not expose a convolutional layer"):
        interpret.gradcam(model, np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("pooling", ["avg", "maxpool_flatten"])
def test_every_head_of_the_model_builder_is_explained_and_mapped(pooling):

    config = RunConfig(dataset_id="any", backbone="small_cnn", weights="none", strategy="from_scratch", image_size=32,
                       head=HeadConfig(pooling=pooling, hidden_units=8), augment=AugmentConfig(flip=True)).validate()
    model, _ = modeling.build(config, 3)
    heatmap, _, layer = interpret.gradcam(model, np.full((32, 32, 3), 128, np.float32))
    assert heatmap.shape == (32, 32) and layer == "block4_out"  # 2x2 (the last residual block): the last map with a position
    # The features are the head's input, pooled: 256 channels, or 256 per 1x1 max-pooled cell.
    assert interpret.feature_model(model).output_shape == (None, 256)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_source):
    return trained_copy(tmp_path_factory, tiny_source)


@pytest.fixture(scope="module")
def model(trained):
    return evaluation.load_model(trained)


def test_the_last_conv_layer_of_a_registry_backbone_keeps_a_position(model):
    inner, layer = interpret.last_conv_layer(interpret.find_backbone(model))
    later = inner.layers[inner.layers.index(layer) + 1 :]
    assert layer.output.shape[1] > 1  # MobileNet at 32 px ends in 1x1; an earlier map still has a position
    assert all(len(lay.output.shape) != 4 or lay.output.shape[1] == 1 or "pad" in lay.name for lay in later)


def test_explain_an_image_file_with_a_trained_run(trained, model, tiny_source):
    data = next(tiny_source.rglob("*.png")).read_bytes()
    out = interpret.explain(model, data, 32)
    classes = files.read_json(trained / "split.json")["classes"]
    expected = evaluation.predict(trained, [("x.png", data)], model=model)[0]["prediction"]
    assert out["image"].shape == (32, 32, 3) and out["image"].dtype == np.uint8
    assert out["heatmap"].shape == (32, 32) and 0 <= out["heatmap"].min() <= out["heatmap"].max() <= 1
    assert classes[out["class_index"]] == expected
    assert interpret.explain(model, data, 32, class_index=0)["class_index"] == 0


def test_embeddings_are_computed_once_then_read_from_the_run_folder(trained, model, monkeypatch):
    split = files.read_json(trained / "split.json")
    labels = {rel: label for part in ("train", "val", "test") for rel, label in split[part]}
    emb = interpret.compute_embeddings(trained, model=model, max_images=30)  # of 36: a sample
    assert (trained / interpret.EMBEDDINGS_FILE).is_file()
    assert len(emb["files"]) == len(set(emb["files"])) == 30
    assert emb["projections"]["PCA"].shape == emb["projections"]["t-SNE"].shape == (30, 2)
    assert [labels[f] for f in emb["files"]] == emb["labels"].tolist()
    assert set(emb["splits"]) == {"train", "val", "test"} and emb["classes"] == split["classes"]
    with np.load(trained / interpret.EMBEDDINGS_FILE) as npz:
        features = npz["features"]
    assert features.shape == (30, 256)  # the pooled backbone features of MobileNet V1 0.25
    pca = PCA(n_components=2, random_state=runs.load_config(trained).seed).fit_transform(features)
    np.testing.assert_allclose(emb["projections"]["PCA"], pca, rtol=1e-4, atol=1e-4)

    def no_model(run_dir):
        raise AssertionError("the cached view must not load the model")

    monkeypatch.setattr(evaluation, "load_model", no_model)
    again = interpret.load_embeddings(trained)
    np.testing.assert_array_equal(again["projections"]["t-SNE"], emb["projections"]["t-SNE"])
    assert again["files"] == emb["files"] and again["mislabeled"] == emb["mislabeled"]


def test_a_point_inside_another_class_cluster_is_flagged():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0, 1], [0, 5.0, 1, 0]])
    labels = np.repeat([0, 1], 20)
    features = centres[labels] + rng.normal(0, 0.3, (40, 4))
    labels[3] = 1  # a class-0 image labelled as class 1
    flagged = interpret.possibly_mislabeled(features, labels, ["cat", "dog"], [f"{i}.jpg" for i in range(40)])
    assert flagged == [{"index": 3, "file": "3.jpg", "label": "dog", "neighbours_say": "cat", "agreement": 1.0}]
