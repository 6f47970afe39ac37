"""Augmentation: random changes to training images, as Keras preprocessing layers inside the model
(active only while training), and the preview the Data page shows of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.spec.config import AugmentConfig

if TYPE_CHECKING:
    import tf_keras as keras


def augmentation(aug: AugmentConfig, seed: int) -> keras.Sequential | None:
    """Random image changes, active only while training (Keras preprocessing layers)."""
    import tf_keras as keras
    from tf_keras import layers as kl

    steps = []
    if aug.flip:
        steps.append(kl.RandomFlip("horizontal", seed=seed))
    if aug.rotate:
        steps.append(kl.RandomRotation(0.1, seed=seed))
    if aug.zoom:
        steps.append(kl.RandomZoom(0.15, seed=seed))
    if aug.translate:
        steps.append(kl.RandomTranslation(0.1, 0.1, seed=seed))
    if aug.contrast:
        steps.append(kl.RandomContrast(0.2, seed=seed))
    if aug.brightness:
        steps.append(kl.RandomBrightness(0.2, value_range=(0, 255), seed=seed))
    return keras.Sequential(steps, name="augmentation") if steps else None


def augmentation_preview(
    paths: Sequence[Path], augment: AugmentConfig, seed: int, image_size: int = 160, variants: int = 4
) -> list[list[np.ndarray]]:
    """For each image: [as training sees it, then `variants` random augmentations] as uint8 arrays.

    The same Keras preprocessing layers as training (augmentation()); imports TensorFlow.
    """
    import tensorflow as tf

    layer = augmentation(augment, seed)
    out = []
    for path in paths:
        img = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3)
        img = tf.image.resize(tf.cast(img, tf.float32), (image_size, image_size))
        batch = tf.repeat(img[None], variants, axis=0)
        changed = layer(batch, training=True) if layer is not None else batch
        arrays = [img.numpy(), *tf.unstack(changed)]
        out.append([np.clip(np.asarray(a), 0, 255).astype(np.uint8) for a in arrays])
    return out
