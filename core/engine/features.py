"""The feature cache: with a frozen backbone, each image's features are computed once, not every epoch.

A cache file holds pooled backbone features per image, keyed by everything that decides them:
backbone (a TF Hub backbone's id is its handle; a local SavedModel folder's files are hashed),
weights (for a backbone from an earlier run: that run and a content hash of the weights file it
starts from), image size, pooling and (for augmented views) the augmentation, seed and view count,
plus each image's content hash. A reused vector is therefore exactly what a fresh pass would
compute. Files live in <workspace>/cache/features/.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from core.data import tfdata
from core.spec import backbones, strategies
from core.spec.config import RunConfig
from core.store import runs

CACHE_VERSION = 1


def cache_file(ws: Path, config: RunConfig, views: int) -> Path:
    """The cache file for this backbone set-up (content hashes are checked per image inside)."""
    key = {
        "version": CACHE_VERSION, "dataset": config.dataset_id, "backbone": config.backbone,
        "weights": config.weights, "image_size": config.image_size, "pooling": config.head.pooling,
    }
    if config.weights == "run":
        # The backbone starts from an earlier run's file: the run, and what that file holds now
        # (a cancelled run resumed later saves a new model.keras under the same name).
        source = source_weights_file(ws, config)
        key |= {"source_run": config.source_run, "source_file": source.name, "source_sha256": _file_digest(source)}
    kind = backbones.get(config.backbone).kind  # the data's kind: a config pairs them (data.kinds.check_backbone)
    if kind != "image":
        key["kind"] = kind  # absent for images, so caches made before kinds stay valid
    handle = backbones.get(config.backbone).hub_handle
    if handle and not handle.startswith(("https://", "http://")):
        # A SavedModel folder on this computer can be replaced under the same path; a web handle
        # names one published version. The variables index holds a checksum of every tensor.
        key["hub_files"] = [_file_digest(Path(handle) / "saved_model.pb"),
                            _file_digest(Path(handle) / "variables" / "variables.index")]
    if views:
        key |= {"views": views, "augment": asdict(config.augment), "seed": config.seed}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return ws / "cache" / "features" / f"{digest}.npz"


def source_weights_file(ws: Path, config: RunConfig) -> Path:
    """The earlier run's file a weights="run" backbone starts from: its model.keras, or its early checkpoint."""
    run_dir = runs.runs_root(ws) / config.source_run
    if strategies.get(config.strategy).source == "early":
        return run_dir / "checkpoints" / runs.EARLY_CHECKPOINT
    return run_dir / "model.keras"


def _file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes (None when it is missing), hashed once per size and modification time."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _hash_file(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _item_keys(info: dict[str, Any], items: list[tuple[str, int]]) -> list[str]:
    # The stored path plus the original file's hash: a re-imported or edited image never matches.
    return [f"{rel}:{info['hashes'].get(rel, '')}" for rel, _ in items]


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return dict(zip(data["keys"].tolist(), data["features"]))
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is recomputed, never trusted


def _save(path: Path, table: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.sweep_scratch(path.parent, ".features-")  # writes of killed processes
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=runs.scratch_prefix(".features-"), suffix=".npz.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.array(list(table)), features=np.stack(list(table.values())))
        settings.fault("feature_pass")  # features computed, the cache file not yet in place
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def feature_extractor(model: Any, base: Any, augmented: bool) -> Any:
    """The classifier's front half: (augmentation) -> frozen backbone -> pooling."""
    import tf_keras as keras

    inputs = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype)  # the kind's raw input (strings for texts)
    x = inputs
    if augmented:
        x = model.get_layer("augmentation")(x, training=True)  # random views even inside predict()
    x = base(x, training=False)
    return keras.Model(inputs, model.get_layer("pool")(x), name="feature_extractor")


def head_model(model: Any) -> Any:
    """The classifier's back half, sharing its layers: training it trains the full model's head."""
    import tf_keras as keras

    pool = model.get_layer("pool")
    inputs = keras.Input(pool.output_shape[1:])
    x = inputs
    for layer in model.layers[model.layers.index(pool) + 1 :]:
        x = layer(x)
    return keras.Model(inputs, x, name="head")


def features_for(
    extractor: Any, info: dict[str, Any], root: Path, items: list[tuple[str, int]], config: RunConfig,
    cache: Path, views: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Features for the items ((views,) n, dim), computed only for images not cached yet; plus figures."""
    keys = _item_keys(info, items)
    table = _load(cache)
    wanted = [f"{k}#{v}" for v in range(max(views, 1)) for k in keys]
    missing = sorted({k for k in keys if any(f"{k}#{v}" not in table for v in range(max(views, 1)))})
    started = time.monotonic()
    if missing:
        index = {k: i for i, k in enumerate(keys)}
        todo = [items[index[k]] for k in missing]
        for v in range(max(views, 1)):
            ds = tfdata.pipeline(root, todo, config.image_size, tfdata.INFERENCE_BATCH, False, config.seed + v,
                                 crop=int(bool(views) and config.augment.shift))  # augmented views: a random second
            computed = extractor.predict(ds, verbose=0)
            table.update({f"{k}#{v}": vec for k, vec in zip(missing, computed)})
        _save(cache, table)
    stacked = np.stack([table[k] for k in wanted]).astype(np.float32)
    shape = (max(views, 1), len(keys), -1) if views else (len(keys), -1)
    figures = {"images": len(keys), "computed": len(missing), "views": views,
               "seconds": round(time.monotonic() - started, 3)}
    return stacked.reshape(shape), figures


def train_dataset(feats: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, views: int) -> tuple[Any, int]:
    """A shuffled tf.data set of (features, label), and its steps per epoch (one view per image per epoch on average)."""
    import tensorflow as tf

    n = len(labels)
    if views:
        feats = feats.reshape(views * n, -1)
        labels = np.tile(labels, views)
    ds = tf.data.Dataset.from_tensor_slices((feats, labels.astype(np.int32)))
    # Same shuffle op and seed as the image pipeline, so both paths see the same order.
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    steps = -(-n // batch_size)
    if views:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), steps


def eval_dataset(feats: np.ndarray, labels: np.ndarray, batch_size: int) -> Any:
    """An ordered tf.data set of (features, label) for validation."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((feats, labels.astype(np.int32))).batch(batch_size)
