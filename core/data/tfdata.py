"""The tf.data input pipeline: stored items streamed from disk, read by their kind's loader, and batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.data import kinds
from core.store.files import read_json


# Batch size for inference passes (features, evaluation, embeddings, latency): the training batch does not
# change their results, and the peak memory of a run is the backbone's activations of one such batch.
# Measured for MobileNet V2 1.0 at 224 px on all 3,000 flowers: peak 1,523 MB at 32, 1,219 at 16, 1,104
# at 8, with the feature pass as fast at 8 as at 32 on 2 CPU cores (102 vs 94 images/s; see the note).
INFERENCE_BATCH = 8


def _record(root: Path) -> dict:
    record = Path(root) / "dataset.json"
    return read_json(record) if record.is_file() else {}


def crop_views(root: Path, image_size: int, kind: str | None = None) -> int:
    """How many random views of each item one training epoch takes where time shift is on (sounds: as many seconds
    as the dataset's window, so an epoch of 3-second windows hears as much as one of 1-second windows); 0 for a
    kind that reads every item whole (no `load_random`)."""
    data_kind = kinds.get(kind) if kind else kinds.of_root(root)
    return data_kind.load_random(_record(root), image_size)[1] if data_kind.load_random is not None else 0


def batches(n_items: int, batch_size: int, crop: int = 0) -> int:
    """Batches in one pass of `pipeline` over n items (each read `crop` times when crop > 1)."""
    return -(-n_items * max(crop, 1) // batch_size)


def pipeline(root: Path, items: list[tuple[str, int]], image_size: int, batch_size: int, shuffle: bool, seed: int,
             kind: str | None = None, targets: tuple[Any, ...] | None = None, crop: int = 0) -> Any:
    """A tf.data.Dataset of (model inputs, int labels) streamed from disk: float32 0-255 pixels for images.

    `kind` is the data's kind id; by default the kind the dataset in `root` records (images when none).
    `targets`: arrays (one row per item) that stand beside each input instead of its int label, e.g.
    distillation's packed labels and teacher answers and its sample weights: (inputs, *targets).
    `crop`: a training pass whose time shift is on reads `crop` random views of each item with the kind's
    `load_random` where it has one (sounds: random seconds of a longer clip, anew each pass; `crop_views` says
    how many make an epoch); 0 reads each item once with `load`.
    """
    import tensorflow as tf

    data_kind = kinds.get(kind) if kind else kinds.of_root(root)
    random = crop > 0 and data_kind.load_random is not None
    read = data_kind.load_random(_record(root), image_size)[0] if random else data_kind.load(image_size)
    views = crop if random else 1
    paths = [str(root / rel) for rel, _ in items]
    columns = (tf.constant([label for _, label in items], dtype=tf.int32),) if targets is None else tuple(targets)
    ds = tf.data.Dataset.from_tensor_slices((paths, *columns))
    if views > 1:
        ds = ds.repeat(views)
    if shuffle:
        ds = ds.shuffle(len(items) * views, seed=seed, reshuffle_each_iteration=True)

    def load(path: tf.Tensor, *rest: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return (read(path), *rest)

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)
