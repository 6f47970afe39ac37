"""`bench scratch-bn`: why a network trained from scratch was near chance on validation while its training
accuracy climbed (issue 27). The `shapes` sample, `small_cnn` at 64 px, the from-scratch fallback's
batches (16), trained once per BatchNorm momentum; after every epoch the validation split is scored three
ways: in inference mode (the moving statistics, as validation, test and every export see it), with the
batch's own statistics (training-mode BatchNorm), and in inference mode after the moving statistics are
re-estimated on the training images. If only the first lags, the moving statistics are the cause.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.data import samples
from core.engine import networks

MOMENTA = (0.99, 0.9)
EPOCHS = 8
SIZE = 64
BATCH = 16


def _arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for label, name in enumerate(samples.SHAPE_CLASSES):
        for f in sorted((root / name).iterdir()):
            xs.append(np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE)), dtype="float32") / 255.0)
            ys.append(label)
    return np.stack(xs), np.array(ys)


def _reestimate(model: Any, x: np.ndarray) -> None:
    """Moving statistics recomputed as plain averages over the training images (one pass, momentum 0)."""
    import tf_keras as keras

    bns = [layer for layer in model.submodules if isinstance(layer, keras.layers.BatchNormalization)]
    kept = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(x[:512], training=True)  # one batch of everything: momentum 0 keeps exactly its statistics
    for layer, m in zip(bns, kept, strict=True):
        layer.momentum = m


def _one(momentum: float, data: tuple[np.ndarray, ...], epochs: int) -> list[dict[str, float]]:
    import tensorflow as tf
    import tf_keras as keras

    x_tr, y_tr, x_va, y_va = data
    keras.utils.set_random_seed(0)
    base = networks.small_cnn((SIZE, SIZE, 3), bn_momentum=momentum)
    model = keras.Sequential([base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rows = []
    for epoch in range(epochs):
        hist = model.fit(x_tr, y_tr, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
        inference = float(np.mean(np.argmax(model.predict(x_va, verbose=0), 1) == y_va))
        batch_stats = float(np.mean(np.argmax(model(tf.constant(x_va), training=True).numpy(), 1) == y_va))
        saved = [w.numpy() for w in model.weights]
        _reestimate(model, x_tr)
        reestimated = float(np.mean(np.argmax(model.predict(x_va, verbose=0), 1) == y_va))
        for w, v in zip(model.weights, saved, strict=True):
            w.assign(v)
        rows.append({"epoch": epoch + 1, "train_acc": round(float(hist.history["accuracy"][-1]), 3),
                     "val_inference": round(inference, 3), "val_batch_stats": round(batch_stats, 3),
                     "val_reestimated": round(reestimated, 3)})
    return rows


def run(keras_cache: str | None = None) -> dict[str, Any]:
    """Both momenta on the same split; the per-epoch table."""
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        x, y = _arrays(samples.generate_shapes(Path(tmp) / "shapes"))
    order = np.random.default_rng(0).permutation(len(y))
    cut = int(0.8 * len(y))
    data = (x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]])
    started = time.monotonic()
    by_momentum = {str(m): _one(m, data, EPOCHS) for m in MOMENTA}
    return {"benchmark": "scratch-bn", "epochs": EPOCHS, "steps_per_epoch": -(-cut // BATCH),
            "train_images": cut, "val_images": len(y) - cut, "by_momentum": by_momentum,
            "seconds": round(time.monotonic() - started, 1), "cpus": os.cpu_count(),
            "load": [round(v, 2) for v in os.getloadavg()]}


def describe(result: dict[str, Any]) -> str:
    """The per-epoch table, one block per momentum."""
    lines = [f"scratch-bn: small_cnn from scratch on shapes, {result['train_images']} training images "
             f"({result['steps_per_epoch']} steps per epoch), {result['val_images']} validation images"]
    for m, rows in result["by_momentum"].items():
        lines.append(f"  BatchNorm momentum {m}: epoch train / val (moving stats) / val (batch stats) / val (re-estimated)")
        lines += [f"    {r['epoch']:2d}  {r['train_acc']:.3f}  {r['val_inference']:.3f}  {r['val_batch_stats']:.3f}  "
                  f"{r['val_reestimated']:.3f}" for r in rows]
    return "\n".join(lines)
