"""The tf.data input pipeline: stored items streamed from disk, read by their kind's loader, and batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.data import kinds


# Batch size for inference passes (features, evaluation, embeddings, latency): the training batch does not
# change their results, and the peak memory of a run is the backbone's activations of one such batch.
# Measured for MobileNet V2 1.0 at 224 px on all 3,000 flowers: peak 1,523 MB at 32, 1,219 at 16, 1,104
# at 8, with the feature pass as fast at 8 as at 32 on 2 CPU cores (102 vs 94 images/s; see the note).
INFERENCE_BATCH = 8


def pipeline(root: Path, items: list[tuple[str, int]], image_size: int, batch_size: int, shuffle: bool, seed: int,
             kind: str | None = None, targets: tuple[Any, ...] | None = None, crop: bool = False) -> Any:
    """A tf.data.Dataset of (model inputs, int labels) streamed from disk: float32 0-255 pixels for images.

    `kind` is the data's kind id; by default the kind the dataset in `root` records (images when none).
    `targets`: arrays (one row per item) that stand beside each input instead of its int label, e.g.
    distillation's packed labels and teacher answers and its sample weights: (inputs, *targets).
    `crop`: a training pass whose time shift is on reads with the kind's `load_random` where it has one
    (sounds: a random second of each longer clip, each epoch anew).
    """
    import tensorflow as tf

    data_kind = kinds.get(kind) if kind else kinds.of_root(root)
    read = (data_kind.load_random if crop and data_kind.load_random else data_kind.load)(image_size)
    paths = [str(root / rel) for rel, _ in items]
    columns = (tf.constant([label for _, label in items], dtype=tf.int32),) if targets is None else tuple(targets)
    ds = tf.data.Dataset.from_tensor_slices((paths, *columns))
    if shuffle:
        ds = ds.shuffle(len(items), seed=seed, reshuffle_each_iteration=True)

    def load(path: tf.Tensor, *rest: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return (read(path), *rest)

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)
