"""TransferLab's own Keras objects: preprocessing layers and losses, defined in an importable module
(never in a page script, where every rerun would define them again).

Preprocessing lives inside the model so that every export takes raw 0-255 RGB pixels.

Importing this module does not import TensorFlow: the classes are made, and registered with Keras,
the first time `custom_objects()` is called (once per process). Everything that builds or loads a
model calls it first, so a saved model always finds its classes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.engine import sounds
from core.spec.backbones import TORCH_MEAN, TORCH_STD

# ImageNet channel means in BGR order, as Keras's "caffe" preprocessing subtracts them.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@lru_cache(maxsize=1)
def custom_objects() -> dict[str, type]:
    """Define and register TransferLab's Keras classes (once per process); returns them by class name."""
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="transferlab")
    class CaffePreprocess(keras.layers.Layer):
        """RGB 0-255 -> BGR minus the ImageNet mean: what ResNet50's weights expect."""

        def call(self, inputs: Any) -> Any:
            return tf.reverse(inputs, axis=[-1]) - tf.constant(_CAFFE_MEAN_BGR, dtype=inputs.dtype)

    @keras.saving.register_keras_serializable(package="transferlab")
    class PerImageStandardize(keras.layers.Layer):
        """Each picture minus its own mean, over its own standard deviation: a network trained from scratch
        sees shapes and edges, not each photo's overall colour and brightness (issue 27)."""

        def call(self, inputs: Any) -> Any:
            return tf.image.per_image_standardization(inputs)

    @keras.saving.register_keras_serializable(package="transferlab")
    class SmoothedSparseCrossentropy(keras.losses.Loss):
        """Cross-entropy on integer labels with label smoothing (Keras has it only for one-hot labels)."""

        def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs: Any):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = label_smoothing

        def call(self, y_true: Any, y_pred: Any) -> Any:
            onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(y_pred)[-1])
            return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.label_smoothing)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    return {"CaffePreprocess": CaffePreprocess, "PerImageStandardize": PerImageStandardize,
            "SmoothedSparseCrossentropy": SmoothedSparseCrossentropy,
            **sounds.custom_objects()}


def get(name: str) -> type:
    """One of TransferLab's Keras classes by name (registered on first use)."""
    return custom_objects()[name]


def preprocessing_layer(kind: str) -> Any:
    """The layer that turns raw 0-255 RGB pixels into what a backbone family expects."""
    import tf_keras as keras

    if kind == "minus_one_to_one":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")
    if kind == "zero_to_one":
        return keras.layers.Rescaling(1.0 / 255.0, name="preprocess")
    if kind == "caffe":
        return get("CaffePreprocess")(name="preprocess")
    if kind == "per_image":
        return get("PerImageStandardize")(name="preprocess")
    if kind == "torch":
        # Normalization computes (x - mean) / sqrt(variance): Keras's "torch" preprocess_input.
        return keras.layers.Normalization(
            mean=[255.0 * m for m in TORCH_MEAN], variance=[(255.0 * s) ** 2 for s in TORCH_STD], name="preprocess")
    if kind == "none":
        return keras.layers.Identity(name="preprocess")
    raise ValueError(f"unknown preprocessing {kind!r}")
