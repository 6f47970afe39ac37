"""Custom Keras layers, defined once in an importable module (never in a page script).

Preprocessing lives inside the model so that every export takes raw 0-255 RGB pixels.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

# ImageNet channel means in BGR order, as Keras's "caffe" preprocessing subtracts them.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="transferlab")
class CaffePreprocess(keras.layers.Layer):
    """RGB 0-255 -> BGR minus the ImageNet mean: what ResNet50's weights expect."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.reverse(inputs, axis=[-1]) - tf.constant(_CAFFE_MEAN_BGR, dtype=inputs.dtype)


def preprocessing_layer(kind: str) -> keras.layers.Layer:
    """The layer that turns raw pixels into what a backbone family expects."""
    if kind == "minus_one_to_one":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")
    if kind == "zero_to_one":
        return keras.layers.Rescaling(1.0 / 255.0, name="preprocess")
    if kind == "caffe":
        return CaffePreprocess(name="preprocess")
    if kind == "none":
        return keras.layers.Identity(name="preprocess")
    raise ValueError(f"unknown preprocessing {kind!r}")
