"""Why a model decides what it does: Grad-CAM heatmaps and 2-D maps of the backbone's features.

Both work on a trained TransferLab model, whose layers are: the image input, the augmentation
(optional, inactive at inference), the backbone (a model wrapping the preprocessing and a Keras
application), the pooling, the head (dropout, optional hidden layer) and the "predictions" Dense.
TensorFlow is imported only by the functions that run the model, so reading a cached embedding
view stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.neighbors import NearestNeighbors

from core.data import images, tfdata
from core.data import sounds as data_sounds
from core.engine import evaluation, sounds, texts
from core.errors import DatasetError, TransferLabError
from core.spec import kinds as spec_kinds
from core.store import datasets, runs
from core.store.files import read_json

# t-SNE is quadratic in the number of points; above this the map would take minutes on a CPU.
MAX_EMBEDDED = 2000
NEIGHBOURS = 5
# A point whose neighbours are at least this much of one other class is flagged for a check.
MISLABEL_AGREEMENT = 0.8
EMBEDDINGS_FILE = "embeddings.npz"


class ExplanationUnavailable(TransferLabError):
    """The model does not expose what an explanation needs (e.g. no convolutional layer)."""


# ---------------------------------------------------------------- Grad-CAM


def _four_d(layer: Any) -> tuple[int, int] | None:
    """The (height, width) of a layer's output if it is one image-shaped tensor, else None."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # a layer used twice, or never called, has no single output
        return None
    return (shape[1], shape[2]) if len(shape) == 4 else None


def find_backbone(model: Any) -> Any:
    """The backbone sub-model: the nested model between the input and the pooling."""
    import tf_keras as keras

    # The augmentation is a Sequential model too; the backbone is the functional one.
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model) and not isinstance(layer, keras.Sequential)]
    if not nested:
        raise ExplanationUnavailable("This model has no backbone sub-model, so no heatmap can be drawn for it.")
    return nested[-1]


def last_conv_layer(base: Any) -> tuple[Any, Any]:
    """(the network inside the backbone, its last convolutional feature map layer).

    Found by walking the layers, not by name, so every Keras application works: the last layer
    with an image-shaped (4-D) output that comes after the first convolution (activations and
    BatchNorm after a convolution count; the input and the preprocessing do not). A 1x1 map (a
    tiny input through a deep network) carries no position, so the last map that still has one
    is preferred. A backbone whose network hides its layers (a TF Hub model) has none.
    """
    import tf_keras as keras

    convolutions = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    inner = base.layers[-1] if isinstance(base.layers[-1], keras.Model) else base
    candidates, seen_conv = [], False
    for layer in getattr(inner, "layers", []):
        seen_conv = seen_conv or isinstance(layer, convolutions)
        # Padding only adds an artificial border around the map before it.
        if seen_conv and not isinstance(layer, keras.layers.ZeroPadding2D) and (hw := _four_d(layer)):
            candidates.append((layer, hw))
    if not candidates:
        raise ExplanationUnavailable(
            "This backbone does not expose a convolutional layer (TF Hub models hide theirs), "
            "so no Grad-CAM heatmap can be drawn for this run."
        )
    spatial = [c for c in candidates if (c[1][0] or 2) > 1 and (c[1][1] or 2) > 1]
    return inner, (spatial or candidates)[-1][0]


def _logits_layer(dense: Any) -> Any:
    """A copy of the softmax output layer without the softmax.

    Grad-CAM follows the class score before softmax: a confident softmax output is flat, so its
    gradients vanish and the heatmap would be empty exactly when the model is sure.
    """
    config = {**dense.get_config(), "activation": "linear", "name": f"{dense.name}_logits"}
    copy = type(dense).from_config(config)
    copy.build(dense.input_shape)
    copy.set_weights(dense.get_weights())
    return copy


def gradcam(model: Any, image: np.ndarray, class_index: int | None = None,
            size: tuple[int, int] | None = None) -> tuple[np.ndarray, int, str]:
    """Grad-CAM for one raw 0-255 RGB image: (heatmap in [0, 1] at the image's size, class, layer name).
    A model whose input is not a picture (a sound's waveform, turned into one inside) names the heatmap's `size`.

    The class defaults to the predicted one. The forward pass is rebuilt layer by layer (the
    classifier is a chain, see the module docstring) so that the backbone's inner network can hand
    out its last feature map alongside its output.
    """
    import tensorflow as tf
    import tf_keras as keras

    base = find_backbone(model)
    inner, conv = last_conv_layer(base)
    tap = keras.Model(inner.inputs, [conv.output, inner.output])
    output_layer = model.layers[-1]
    softmax = getattr(output_layer, "activation", None) is keras.activations.softmax
    final = _logits_layer(output_layer) if softmax else output_layer
    preprocessing = [] if inner is base else base.layers[1:-1]  # what runs in front of the network
    x = tf.convert_to_tensor(image[None].astype(np.float32))
    with tf.GradientTape() as tape:
        for layer in model.layers[1:]:
            if layer is base:
                for step in preprocessing:
                    x = step(x, training=False)
                fmap, x = tap(x, training=False)
            elif layer is output_layer:
                x = final(x)
            else:
                x = layer(x, training=False)
        if class_index is None:
            class_index = int(tf.argmax(x[0]))
        score = x[:, class_index]
    grads = tape.gradient(score, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # one importance per channel (the Grad-CAM paper)
    cam = tf.nn.relu(tf.reduce_sum(fmap * weights[:, None, None, :], axis=-1))[0]
    heatmap = tf.image.resize(cam[..., None], size or image.shape[:2], method="bilinear")[..., 0].numpy()
    peak = float(heatmap.max())
    heatmap = heatmap / peak if peak > 0 else heatmap  # 1 where the class's evidence is strongest
    return np.clip(heatmap, 0.0, 1.0).astype(np.float32), class_index, conv.name


def explain_image(model: Any, data: bytes, image_size: int, class_index: int | None = None) -> dict[str, Any]:
    """Grad-CAM for an image file's bytes, at the model's input size: the image as seen, the heatmap, the class."""
    arr = images.load_image_array(data, image_size)
    heatmap, index, layer = gradcam(model, arr, class_index)
    return {"image": np.clip(arr, 0, 255).astype(np.uint8), "heatmap": heatmap, "class_index": index, "layer": layer}


def explain_sound(model: Any, data: bytes, image_size: int, class_index: int | None = None) -> dict[str, Any]:
    """Grad-CAM over a clip's spectrogram ("which moments and pitches decided"): the model makes the picture
    from the waveform inside itself, so the heatmap over its picture maps back to time x pitch. Returns the
    spectrogram and heatmap as (mel bands, frames) arrays, low pitch first, plus the moment and pitch band that
    weighed most in words."""
    wave = data_sounds.load_clip(data)
    heatmap, index, layer = gradcam(model, wave, class_index, size=(sounds.FRAMES, sounds.MELS))
    heatmap = heatmap.T  # rows: mel bands (pitch), columns: frames (time)
    frame = int(np.argmax(heatmap.sum(axis=0)))
    band = int(np.argmax(heatmap.sum(axis=1)))
    low, high = sounds.band_hz(band)
    return {"spectrogram": sounds.spectrogram(wave), "heatmap": heatmap, "class_index": index, "layer": layer,
            "seconds": round((frame * sounds.STEP + sounds.FRAME / 2) / data_sounds.SAMPLE_RATE, 2),
            "pitch_hz": (round(low), round(high))}


# How a prediction is explained, by a kind's `explain` (core.spec.kinds): (model, file bytes, input size,
# class or None for the predicted one) -> what the page shows. A kind whose method is missing here says so.
EXPLAINERS: dict[str, Callable[[Any, bytes, int, int | None], dict[str, Any]]] = {
    "gradcam": explain_image, "gradcam_spectrogram": explain_sound, "words": texts.explain_words}


def explain(model: Any, data: bytes, image_size: int, class_index: int | None = None,
            kind: str = spec_kinds.DEFAULT) -> dict[str, Any]:
    """Why the model predicts what it does for one file of this kind (images: Grad-CAM's heatmap)."""
    method = spec_kinds.get(kind).explain
    if method not in EXPLAINERS:
        raise ExplanationUnavailable(f"This version of the app cannot explain predictions on "
                                     f"{spec_kinds.get(kind).items}.")
    return EXPLAINERS[method](model, data, image_size, class_index)


# ---------------------------------------------------------------- embeddings


def feature_model(model: Any) -> Any:
    """The model up to the pooled backbone features (what the classifier head reads)."""
    import tf_keras as keras

    names = [layer.name for layer in model.layers]
    # The input of the layer after "pool": a pooling that is itself a small model (max-pool then
    # flatten) reports its own inner output tensor as `.output`, not the one in this graph.
    after = model.layers[names.index("pool") + 1] if "pool" in names[:-1] else model.get_layer("predictions")
    return keras.Model(model.inputs, after.input)


def _sample(items: list[tuple[str, int, str]], limit: int, seed: int) -> list[tuple[str, int, str]]:
    """At most `limit` items, drawn at random (so classes keep their shares), the same for the same seed."""
    if len(items) <= limit:
        return items
    order = np.random.default_rng(seed).permutation(len(items))[:limit]
    return [items[i] for i in sorted(order)]


def possibly_mislabeled(features: np.ndarray, labels: np.ndarray, classes: list[str], files: list[str],
                        k: int = NEIGHBOURS, agreement: float = MISLABEL_AGREEMENT) -> list[dict[str, Any]]:
    """Images whose nearest neighbours in feature space mostly carry one other label."""
    n = len(labels)
    if n <= k:
        return []
    # Cosine distance: pooled ReLU features differ more in direction than in length.
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(features)
    _, idx = nn.kneighbors(features)
    out = []
    for i in range(n):
        others = [j for j in idx[i] if j != i][:k]
        counts = np.bincount(labels[others], minlength=len(classes))
        counts[labels[i]] = 0
        top = int(counts.argmax())
        share = counts[top] / k
        if share >= agreement:
            out.append({"index": i, "file": files[i], "label": classes[labels[i]], "neighbours_say": classes[top],
                        "agreement": float(share)})
    return sorted(out, key=lambda r: -r["agreement"])


def compute_embeddings(run_dir: Path, model: Any = None, max_images: int = MAX_EMBEDDED) -> dict[str, Any]:
    """Backbone features of the run's dataset images, projected to 2-D; cached as embeddings.npz in the run folder."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE


    config = runs.load_config(run_dir)
    if not (run_dir / "split.json").is_file():
        raise DatasetError(f"Run '{run_dir.name}' has no split.json, so its dataset images are not known.")
    split = read_json(run_dir / "split.json")
    root = datasets.dataset_path(config.dataset_id, run_dir.parent.parent)
    items = [(rel, int(label), part) for part in ("train", "val", "test") for rel, label in split[part]]
    items = [item for item in _sample(items, max_images, config.seed) if (root / item[0]).is_file()]
    if len(items) < 3:
        raise DatasetError("Fewer than 3 of the run's images are still in the dataset folder; there is nothing to map.")
    if model is None:
        model = evaluation.load_model(run_dir)
    ds = tfdata.pipeline(root, [(rel, label) for rel, label, _ in items], config.image_size,
                           tfdata.INFERENCE_BATCH, False, config.seed)
    features = feature_model(model).predict(ds.map(lambda x, y: x), verbose=0).reshape(len(items), -1)
    labels = np.array([label for _, label, _ in items])
    pca = PCA(n_components=2, random_state=config.seed).fit_transform(features)
    # Perplexity must stay below the number of points; 30 is scikit-learn's default.
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(items) - 1) / 3), init="pca",
                random_state=config.seed).fit_transform(features)
    np.savez_compressed(
        run_dir / EMBEDDINGS_FILE, features=features.astype(np.float32), labels=labels,
        files=np.array([rel for rel, _, _ in items]), splits=np.array([part for _, _, part in items]),
        pca=pca.astype(np.float32), tsne=tsne.astype(np.float32), classes=np.array(split["classes"]),
    )
    return load_embeddings(run_dir)


def load_embeddings(run_dir: Path) -> dict[str, Any] | None:
    """The cached embedding view of a run (None if not computed yet), with its possibly mislabeled images."""
    path = run_dir / EMBEDDINGS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    classes = data["classes"].tolist()
    files = data["files"].tolist()
    return {
        "classes": classes,
        "files": files,
        "labels": data["labels"],
        "splits": data["splits"].tolist(),
        "projections": {"PCA": data["pca"], "t-SNE": data["tsne"]},
        "mislabeled": possibly_mislabeled(data["features"], data["labels"], classes, files),
    }
