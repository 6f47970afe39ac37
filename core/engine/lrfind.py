"""The learning-rate finder: a short run with the rate growing exponentially, and fastai's "valley" suggestion.

Over about 100 batches the rate grows from 1e-7 to 1 (each batch by the same factor); after every
batch the loss of that batch is recorded and smoothed (an exponential moving average, corrected
for its start as fastai's Recorder does). The run stops early once the smoothed loss passes 4x its
minimum: the rate is then far too high. With a frozen backbone the batches are cached features,
so the finder costs one feature pass (shared with later training) and a few seconds.

The suggestion is fastai's valley rule, re-implemented: on the smoothed curve, find the longest
decreasing stretch (the longest strictly decreasing subsequence, by dynamic programming over the
indices) and take the rate a little past its middle, where the loss falls fastest but is not yet
unstable. Like fastai, the first tenth and the last five points are left out of the search.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.data import health, splits, tfdata
from core.engine import features, modeling, networks
from core.errors import ConfigError
from core.spec import backbones, strategies
from core.spec.config import RANGES, RunConfig
from core.store import datasets

START_LR, END_LR, NUM_ITER, STOP_FACTOR, BETA = 1e-7, 1.0, 100, 4.0, 0.98


def rates(start: float = START_LR, end: float = END_LR, num_iter: int = NUM_ITER) -> np.ndarray:
    """The rate of each batch: start * (end / start) ** (i / (num_iter - 1))."""
    return start * (end / start) ** (np.arange(num_iter) / max(1, num_iter - 1))


def smooth(losses: list[float] | np.ndarray, beta: float = BETA) -> np.ndarray:
    """fastai's smoothed loss: an exponential moving average divided by (1 - beta**n), so it starts unbiased."""
    out, avg = [], 0.0
    for n, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * float(loss)
        out.append(avg / (1 - beta**n))
    return np.array(out)


def valley_index(losses: list[float] | np.ndarray) -> int:
    """fastai's valley rule: the index a little past the middle of the longest decreasing stretch.

    lds[i] is the length of the longest strictly decreasing subsequence ending at i; the stretch is
    (max_end - lds[max_end], max_end) and the suggestion lies at start + int(s) + int(s / 2), with
    s a third of the stretch's length.
    """
    n = len(losses)
    lds = [1] * n
    max_start, max_end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def suggest(lrs: list[float] | np.ndarray, smoothed: list[float] | np.ndarray) -> tuple[float, int]:
    """The suggested rate and its index in lrs; as fastai, the first tenth and the last five points are skipped."""
    n = len(lrs)
    skip_start = n // 10
    skip_end = 5 if n - skip_start > 10 else 0
    window = list(smoothed[skip_start:n - skip_end])
    if len(window) < 2:
        raise ConfigError("The learning-rate finder stopped before it had enough batches to suggest a rate; "
                          "use more images or a smaller batch size.")
    index = skip_start + valley_index(window)
    return float(lrs[index]), index


def find(
    config: RunConfig, ws: Path, num_iter: int = NUM_ITER, start: float = START_LR, end: float = END_LR,
    progress: Callable[[int, int, float, float], None] | None = None,
) -> dict[str, Any]:
    """Run the finder for the first phase of a config; returns the curve and the suggested rate.

    Nothing is written but the feature cache (the finder's weights are thrown away). The result:
    rates, losses (per batch), smoothed, suggestion (clamped to the learning_rate bounds the config
    accepts), suggestion_index, stopped_early, on_features (whether cached features were used),
    batches, seconds.
    """
    import tf_keras as keras

    config.validate()
    if num_iter < 20:
        raise ConfigError("The learning-rate finder needs at least 20 batches to draw a curve.")
    backbones.use_hub_cache(ws)
    info = datasets.load_dataset(config.dataset_id, ws)
    health.check_trainable(info, config.backbone)
    spec = backbones.get(config.backbone)
    if config.weights == "imagenet":
        networks.fetch_weights(spec, config.image_size)  # a clear sentence when the weights are missing
    started = time.monotonic()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    parts = splits.split(info, config.val_fraction, config.test_fraction, config.seed)
    labels = np.array([label for _, label in parts["train"]], dtype=np.int32)
    root = datasets.dataset_path(config.dataset_id, ws)
    model, base = modeling.build(config, len(info["classes"]))
    phase = [p for p in strategies.get(config.strategy).phases(config) if p.epochs > 0][0]
    modeling.apply_phase(base, phase)
    on_features = strategies.uses_feature_cache(config, phase)
    if on_features:
        views = config.augment_views if config.augment.any() else 0
        extractor = features.feature_extractor(model, base, augmented=bool(views))
        train_x, _ = features.features_for(extractor, info, root, parts["train"], config,
                                           features.cache_file(ws, config, views), views)
        trainer = features.head_model(model)
        data, _ = features.train_dataset(train_x, labels, config.batch_size, config.seed, views)
    else:
        trainer = model
        data = tfdata.pipeline(root, parts["train"], config.image_size, config.batch_size, True, config.seed)
    smoothing = {"label_smoothing": config.label_smoothing} if config.label_smoothing else {}
    modeling.compile_for(trainer, config.optimizer, start, **smoothing)
    schedule = rates(start, end, num_iter)
    batches = iter(data.repeat())
    lrs, losses, smoothed, best = [], [], [], math.inf
    stopped_early = False
    for i, lr in enumerate(schedule):
        trainer.optimizer.learning_rate.assign(float(lr))
        x, y = next(batches)
        loss = float(trainer.train_on_batch(x, y, reset_metrics=True)[0])
        lrs.append(float(lr))
        losses.append(loss)
        value = float(smooth(losses)[-1])  # the same smoothing the tests check (100 points at most)
        smoothed.append(value)
        if progress is not None:
            progress(i + 1, num_iter, float(lr), value)
        if not math.isfinite(value) or (i > 0 and value > STOP_FACTOR * best):
            stopped_early = True
            break
        best = min(best, value)
    finite = [k for k, v in enumerate(smoothed) if math.isfinite(v)]
    lrs_f = [lrs[k] for k in finite]
    smooth_f = [smoothed[k] for k in finite]
    rate, index = suggest(lrs_f, smooth_f)
    low, high = RANGES["learning_rate"]
    def finite_or_none(values: list[float]) -> list[float | None]:  # JSON has no NaN or Infinity
        return [v if math.isfinite(v) else None for v in values]

    return {
        "rates": lrs, "losses": finite_or_none(losses), "smoothed": finite_or_none(smoothed),
        "suggestion": float(min(high, max(low, rate))), "suggestion_index": finite[index],
        "suggestion_loss": smooth_f[index], "stopped_early": stopped_early, "on_features": on_features,
        "batches": len(lrs), "start": start, "end": end, "seconds": round(time.monotonic() - started, 2),
    }

