"""What one study process shares across its trials: the frozen backbone, its cached features, its latency.

A study (core.service.tuner) trains many trials, each a run, one after the other in one process. A
trial whose every phase trains the head alone on cached features of an unchanged backbone (the plain
method, a frozen backbone, no earlier run's weights, no target domain, no distribution) differs from
the others only in its head. For such a trial the whole network's fixed costs are paid once per study
process, not once per trial:

- the backbone is built (and its weights loaded) once, and called once: each trial's classifier puts its new
  head on the same pooled features (modeling.classifier), so only the head's layers are new;
- the features of the train, validation and test images are read from the feature cache once (the
  first trial computes what is missing, exactly as a single run does) and kept in memory;
- the per-epoch checkpoints of the whole network become the head's best weights, kept in memory
  (the backbone does not change), and the backbone's early checkpoint is written once and copied;
- the test split is scored from its cached features by the head, and the latency is the backbone's
  (measured once, alone, on the decoded test images) plus the head's (measured each trial, alone).

Every trial still ends as a complete run folder: config.json, split.json, events.jsonl, status.json,
model.keras (the whole classifier, saved once from the best epoch), eval.json with every test
prediction, and checkpoints/early_base.weights.h5. The validation metric each epoch reports (what the
pruner and the study compare) is computed as before, on the same cached validation features.
TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.data import tfdata
from core.engine import evaluation, features, methods, modeling, plain
from core.engine.method import Run
from core.spec import strategies
from core.spec.config import RunConfig
from core.store.files import atomic_target

LATENCY_METHOD = (f"the backbone alone (measured once for the study's trials) plus this head alone (called on the "
                  f"images' features), each on a batch of up to {evaluation.LATENCY_BATCH} decoded test images, after "
                  f"a warm-up, best of {evaluation.LATENCY_REPEATS} timings")

# A long study builds its trunk again after this many heads, so the layers of old heads can be freed.
HEADS_PER_TRUNK = 32


def head_only(config: RunConfig, has_target: bool = False, distributed: bool = False) -> bool:
    """True when every phase of this config trains the head alone on cached features of an unchanged backbone."""
    strategy = strategies.get(config.strategy)
    phases = [p for p in strategy.phases(config) if p.epochs > 0]
    return (methods.is_method(config, plain.METHOD) and strategy.source is None and not has_target
            and not distributed and not config.target_dataset_id and config.weights != "run"
            and bool(phases) and all(strategies.uses_feature_cache(config, p) for p in phases))


def _base_key(config: RunConfig) -> tuple[Any, ...]:
    # Random weights are drawn from the seed (keras.utils.set_random_seed before the build).
    seed = config.seed if config.weights == "none" else None
    return config.backbone, config.image_size, config.weights, seed, config.mixed_precision


def _trunk_key(config: RunConfig) -> tuple[Any, ...]:
    # What the classifier up to its pooled features is made of (the head comes after).
    return _base_key(config) + (config.head.pooling, json.dumps(asdict(config.augment), sort_keys=True))


def _item_keys(run: Run, items: list[tuple[str, int]]) -> tuple[str, ...]:
    return tuple(f"{rel}:{run.info['hashes'].get(rel, '')}:{label}" for rel, label in items)


class Shared:
    """One per study process: the backbones, extractors, features, latencies and early checkpoints of its trials."""

    def __init__(self) -> None:
        self.trunks: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        self.extractors: dict[tuple[str, bool], Any] = {}
        self.feature_sets: dict[tuple[Any, ...], np.ndarray] = {}
        self.latency: dict[tuple[Any, ...], float] = {}
        self.early: dict[tuple[Any, ...], Path] = {}
        self.heads = 0  # heads put on the kept trunks since they were built
        self.builds = 0  # classifiers built whole by this process, backbone included

    # ------------------------------------------------------------ the backbone

    def classifier(self, config: RunConfig, num_classes: int) -> tuple[Any, Any] | None:
        """(classifier, backbone): a new head on the pooled features of the backbone an earlier trial built for
        this backbone, size, weights, augmentation and pooling; None when no trial built one yet."""
        trunk = self.trunks.get(_trunk_key(config))
        if trunk is None:
            return None
        self.heads += 1
        if self.heads > HEADS_PER_TRUNK:  # the shared pooled tensor keeps every earlier head's layers alive
            self.trunks.clear()
            self.extractors.clear()
            self.heads = 0
            return None
        inputs, pooled, base = trunk
        return modeling.classifier(inputs, pooled, config, num_classes), base

    def keep(self, config: RunConfig, model: Any, base: Any) -> None:
        """Remember a trial's classifier up to its pooled features (input, augmentation, backbone, pooling)."""
        key = _trunk_key(config)
        if key not in self.trunks:
            self.trunks[key] = (model.input, model.get_layer("pool").output, base)
            self.builds += 1

    # ------------------------------------------------------------ features

    def _extractor(self, run: Run, cache: Path, augmented: bool) -> Any:
        key = (str(cache), augmented)
        if key not in self.extractors:
            self.extractors[key] = features.feature_extractor(run.model, run.base, augmented)
        return self.extractors[key]

    def features(self, run: Run, split: str, views: int) -> tuple[np.ndarray, dict[str, Any]]:
        """A split's features (train, val or test), read from the feature cache once per process."""
        config, items = run.config, run.parts[split]
        cache = features.cache_file(run.ws, config, views)
        key = (str(cache), views, _item_keys(run, items))
        if key in self.feature_sets:
            return self.feature_sets[key], {"images": len(items), "computed": 0, "views": views, "seconds": 0.0}
        found, figures = features.features_for(self._extractor(run, cache, bool(views)), run.info, run.root, items,
                                               config, cache, views)
        self.feature_sets[key] = found
        return found, figures

    # ------------------------------------------------------------ checkpoints

    def early_checkpoint(self, run: Run) -> None:
        """The backbone's weights after the first epoch (unchanged, as it is frozen): written once, then copied."""
        target = modeling.early_checkpoint_path(run.run_dir)
        if target.is_file():
            return
        source = self.early.get(_base_key(run.config))
        if source is not None and source.is_file():
            with atomic_target(target) as tmp:
                shutil.copyfile(source, tmp)
            return
        modeling.save_early_checkpoint(run.base, run.run_dir)
        self.early[_base_key(run.config)] = target

    def saver(self, run: Run, best_so_far: float) -> Any:
        """The Keras callback that replaces the whole network's checkpoints: the head's best weights, in memory."""
        import tf_keras as keras

        shared = self

        class BestHead(keras.callbacks.Callback):
            """After each epoch: the early checkpoint once; the head's weights when validation loss is the best."""

            def __init__(self) -> None:
                super().__init__()
                self.best = best_so_far

            def on_epoch_end(self, epoch, logs=None):
                shared.early_checkpoint(run)
                val_loss = float((logs or {}).get("val_loss", math.inf))
                if math.isfinite(val_loss) and val_loss < self.best:
                    self.best = val_loss
                    run.memo["best_head"] = (self.model, [w.copy() for w in self.model.get_weights()])

        return BestHead()

    @staticmethod
    def restore_best(run: Run) -> None:
        """Put the best epoch's head weights back into the classifier (its head layers are the trainer's)."""
        if "best_head" in run.memo:
            head, weights = run.memo["best_head"]
            head.set_weights(weights)

    # ------------------------------------------------------------ evaluation

    def evaluate(self, run: Run) -> dict[str, Any]:
        """eval.json from the test split's cached features: the head's probabilities and the latency as measured."""
        test_x, _ = self.features(run, "test", 0)
        head = features.head_model(run.model)
        # The head called directly, in chunks: a few small matrix products, no predict function to trace per trial.
        probs = np.concatenate([head(test_x[i:i + 1024], training=False).numpy() for i in range(0, len(test_x), 1024)])
        ms = self._backbone_ms(run) + evaluation.best_ms_per_item(lambda b: head(b, training=False),
                                                                   test_x[:evaluation.LATENCY_BATCH])
        return evaluation.evaluate(run.run_dir, run.model, scores=(probs, round(ms, 3), LATENCY_METHOD))

    def _backbone_ms(self, run: Run) -> float:
        key = _base_key(run.config)
        if key not in self.latency:
            config = run.config
            cache = features.cache_file(run.ws, config, 0)
            ds = tfdata.pipeline(run.root, run.parts["test"], config.image_size, tfdata.INFERENCE_BATCH, False,
                                 config.seed)
            self.latency[key] = evaluation.latency_ms(self._extractor(run, cache, False), ds)
        return self.latency[key]

