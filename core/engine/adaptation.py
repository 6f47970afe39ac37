"""Domain adaptation: train on labelled source images so the model also works on unlabelled target images.

Two strategies (core.spec.strategies, `adapts`), one trainer:
- adversarial (DANN, Ganin & Lempitsky 2015): a gradient-reversal layer between the adaptation
  layer's activations and a small domain classifier; the classifier learns to tell source from
  target, the reversed gradient teaches the adaptation layer to make them indistinguishable.
  The reversal's strength follows the paper's ramp 2/(1+exp(-10p))-1 over training progress p.
- discrepancy: by default CORAL on the backbone's features (Sun, Feng & Saenko 2016, "Return of
  frustratingly easy domain adaptation"): before the head trains, the source features are whitened
  and re-coloured with the target's mean and covariance (`recolor_map`), so the head learns on
  source features that look like the target's; the saved model is unchanged and takes target images
  as they are. Or, as a loss on the adaptation layer: a multi-kernel Gaussian MMD between source
  and target activations (DAN, Long et al. 2015), or Deep CORAL's distance between their
  covariances (Sun & Saenko 2016). On `bench domain`'s cached features (shapes -> shapes-field,
  3 seeds) the re-colouring measured +9.3 points on the target over source-only, Deep CORAL +1.3,
  DANN with Adam -0.9 / with SGD and the paper's schedule +3.7, CDAN+E +3.1, AdaBN -8.0,
  pseudo-labels -1.7 (the sweep is in issue 27's note); the bench itself, +10.9.
DANN re-colours the same way first by default (adapt_recolor; recolor_strength says how far a run
re-colours): on the bench +10.7 points with it, +4.4 without, so its gain is the re-colouring's.

The adaptation layer is the head's hidden layer (head.hidden_units, 256 when not set). With a
frozen backbone both domains' features come from the feature cache, computed once (the source's as
augmented views when augmentation and views are asked), so an adaptation phase costs seconds; a
fine-tuning phase, or a frozen one with augmentation but no cached views, passes images of both
domains through the network, the source images augmented. Target labels never reach a loss (core.data.domains keeps them out).

As a training method (core.engine.method), `Adaptation` trains each phase on paired source and
target batches, and its companion is the source-only baseline (`compare_source_only`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core import events
from core.data import tfdata
from core.engine import features
from core.engine.method import PhaseData, Run, Settle, Train, companion
from core.engine.plain import Plain
from core.spec import strategies
from core.spec.config import RunConfig
from core.spec.strategies import Phase
from core.store import datasets, runs
from core.store.files import read_json

ADAPTATION_UNITS = 256
# Gaussian kernel bandwidths of the multi-kernel MMD, as multiples of the mean squared distance (DAN).
KERNEL_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


def ramp(progress: Any, exp: Any = math.exp) -> Any:
    """DANN's schedule for the reversal strength: 0 at the start, towards 1 at the end of training.

    The trainer calls it with TensorFlow's exp on a tensor; the tests with math.exp on a number."""
    return 2.0 / (1.0 + exp(-10.0 * progress)) - 1.0


def adapts(config: RunConfig) -> str | None:
    """The kind of adaptation this run's strategy does (None: a plain, source-only run)."""
    return strategies.get(config.strategy).adapts


def prepare(config: RunConfig) -> tuple[RunConfig, list[str]]:
    """An adapting run needs an adaptation layer: the head's hidden layer, made when the config has none."""
    if not adapts(config) or config.head.hidden_units:
        return config, []
    new = config.with_changes(head=replace(config.head, hidden_units=ADAPTATION_UNITS)).validate()
    return new, [f"Domain adaptation lines up the activations of an adaptation layer, so the head gets one "
                 f"({ADAPTATION_UNITS} units) between the backbone and the classifier."]


# ---------------------------------------------------------------- layers and losses (pure)

# The ridge added to both covariances' eigenvalues before the square roots (Sun et al. add the identity): it keeps
# the whitening of few images' features finite. 1.0 measured best of 0.1, 1 and 10 on bench domain's features.
RECOLOR_RIDGE = 1.0


# Above this many features (a flattened feature map), the covariances would not fit in memory: each feature's
# mean and spread are matched instead (a diagonal map).
RECOLOR_MAX_FEATURES = 4096


def recolor_map(source: np.ndarray, target: np.ndarray, strength: float = 1.0, ridge: float = RECOLOR_RIDGE,
                max_features: int = RECOLOR_MAX_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """CORAL on features (Sun et al. 2016): (matrix, shift) taking source feature vectors x to x @ matrix + shift,
    whose mean and covariance are the target's (up to the ridge).

    The map whitens with the source covariance and re-colours with the target's; strength in [0, 1] goes that
    share of the way from the identity (0: the features as they are). Above max_features the matrix is a vector
    (x * matrix + shift): each feature gets the target's mean and spread.
    """
    def root(vectors: np.ndarray, power: float) -> np.ndarray:
        cov = np.cov(vectors.astype(np.float64), rowvar=False)
        values, basis = np.linalg.eigh(np.atleast_2d(cov))
        return (basis * (np.maximum(values, 0.0) + ridge) ** power) @ basis.T

    ms, mt = source.mean(axis=0), target.mean(axis=0)
    if source.shape[1] > max_features:
        full = np.sqrt((target.var(axis=0) + ridge) / (source.var(axis=0) + ridge))
        identity = np.ones_like(full)
    else:
        full, identity = root(source, -0.5) @ root(target, 0.5), np.eye(len(ms))
    t = min(max(float(strength), 0.0), 1.0)
    matrix = (1.0 - t) * identity + t * full
    shift = t * (mt - (ms * full if full.ndim == 1 else ms @ full))
    return matrix.astype(np.float32), shift.astype(np.float32)


def recolor(x: Any, matrix: Any, shift: Any, matmul: Any = np.matmul) -> Any:
    """Feature vectors x through recolor_map's (matrix, shift); the trainer passes TensorFlow's matmul."""
    return (x * matrix if len(matrix.shape) == 1 else matmul(x, matrix)) + shift


def recolor_strength(config: RunConfig) -> float:
    """How far this run re-colours its source features like the target's (CORAL on features), 0 for not at all.

    A strategy that offers the adapt_loss choice re-colours when it is "recolor", adapt_weight being the share of
    the way (its only adaptation); one that offers adapt_recolor (DANN) re-colours in full, then adds its loss."""
    offered = strategies.get(config.strategy).settings if adapts(config) else ()
    if "adapt_loss" in offered and config.adapt_loss == "recolor":
        return min(max(config.adapt_weight, 0.0), 1.0)
    return 1.0 if "adapt_recolor" in offered and config.adapt_recolor else 0.0


def recolors(config: RunConfig) -> bool:
    """Whether this run re-colours its source features (CORAL on features) before the head trains."""
    return recolor_strength(config) > 0


def gradient_reversal(x: Any, lam: Any) -> Any:
    """Identity forward; the gradient comes back multiplied by -lam (the domain classifier's push is reversed)."""
    return _reversal()(x, lam)


@lru_cache(maxsize=1)
def _reversal() -> Any:
    import tensorflow as tf

    @tf.custom_gradient
    def reverse(x, lam):
        def grad(dy):
            return -tf.cast(lam, dy.dtype) * dy, tf.zeros_like(lam)
        return tf.identity(x), grad

    return reverse


def mmd(source: Any, target: Any, multipliers: tuple[float, ...] = KERNEL_MULTIPLIERS) -> Any:
    """Squared multi-kernel Gaussian MMD (biased estimate) between two batches of vectors.

    The bandwidths are multiples of the mean squared distance between all the vectors; it is
    held constant for the gradient, as in DAN's implementations.
    """
    import tensorflow as tf

    x = tf.concat([source, target], axis=0)
    sq = tf.reduce_sum(x * x, axis=1)
    d2 = tf.maximum(sq[:, None] + sq[None, :] - 2.0 * tf.matmul(x, x, transpose_b=True), 0.0)
    n = tf.cast(tf.shape(x)[0], x.dtype)
    bandwidth = tf.stop_gradient(tf.reduce_sum(d2) / tf.maximum(n * n - n, 1.0)) + 1e-8
    k = tf.add_n([tf.exp(-d2 / (bandwidth * m)) for m in multipliers])
    ns = tf.shape(source)[0]
    return tf.reduce_mean(k[:ns, :ns]) + tf.reduce_mean(k[ns:, ns:]) - 2.0 * tf.reduce_mean(k[:ns, ns:])


def coral(source: Any, target: Any) -> Any:
    """Deep CORAL: squared Frobenius distance between the two batches' covariances, over 4 d^2."""
    import tensorflow as tf

    def cov(x):
        x = x - tf.reduce_mean(x, axis=0, keepdims=True)
        return tf.matmul(x, x, transpose_a=True) / tf.maximum(tf.cast(tf.shape(x)[0], x.dtype) - 1.0, 1.0)

    d = tf.cast(tf.shape(source)[1], source.dtype)
    return tf.reduce_sum(tf.square(cov(source) - cov(target))) / (4.0 * d * d)


def domain_classifier(units: int) -> Any:
    """A small network telling source (0) from target (1) activations; it is not part of the saved model."""
    import tf_keras as keras

    return keras.Sequential([keras.Input((units,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(1)], name="domain_classifier")


# ---------------------------------------------------------------- the trainer


def _front_layers(model: Any) -> tuple[Any, Any, Any, Any]:
    return (model.get_layer("hidden_dropout"), model.get_layer("hidden"), model.get_layer("dropout"),
            model.get_layer("predictions"))


def adaptation_model(model: Any, kind: str, loss: str, weight: float, total_steps: int, front: Any = None,
                     recolor: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """A Keras model to fit() on ((source, target), source labels); it trains the classifier's own layers.

    front: None for cached features, else the classifier up to its pooling (images in). Its
    predict/evaluate take source inputs alone, so validation and early stopping work as usual.
    recolor: recolor_map's (matrix, shift), applied to the source's pooled features while training.
    """
    return _trainer_class()(model, kind, loss, weight, total_steps, front, recolor)


@lru_cache(maxsize=1)
def _trainer_class() -> type:
    import tensorflow as tf
    import tf_keras as keras

    class AdaptationTrainer(keras.Model):
        """Label loss on source images plus the adaptation loss between source and target activations."""

        def __init__(self, model, kind, loss, weight, total_steps, front, recolor=None):
            super().__init__(name="adaptation_trainer")
            self.front = front
            # CORAL on features: the source's pooled features re-coloured like the target's (training only).
            self.recolor = None if recolor is None else tuple(tf.constant(a, tf.float32) for a in recolor)
            self.drop_in, self.hidden, self.drop_out, self.predictions = _front_layers(model)
            self.kind, self.loss_name, self.weight = kind, loss, float(weight)
            self.total_steps = float(max(1, total_steps))
            self.step_count = tf.Variable(0.0, trainable=False, name="adaptation_step")
            self.domain = domain_classifier(self.hidden.units) if kind == "adversarial" else None
            self.adapt_tracker = keras.metrics.Mean(name="adapt_loss")

        def activations(self, x, training=False, source=False):
            if self.front is not None:
                x = self.front(x, training=training)
            if source and self.recolor is not None:
                x = recolor(x, *self.recolor, matmul=tf.matmul)
            return self.hidden(self.drop_in(x, training=training))

        def call(self, x, training=False):
            return self.predictions(self.drop_out(self.activations(x, training), training=training))

        def adaptation_loss(self, hs, ht):
            lam = ramp(self.step_count / self.total_steps, exp=tf.exp)
            if self.kind == "adversarial":
                z = gradient_reversal(tf.concat([hs, ht], axis=0), lam)
                domain = tf.concat([tf.zeros_like(hs[:, :1]), tf.ones_like(ht[:, :1])], axis=0)
                return tf.reduce_mean(keras.losses.binary_crossentropy(domain, self.domain(z, training=True),
                                                                       from_logits=True))
            if self.loss_name == "recolor":  # the features are lined up already: the distance left, not trained on
                return tf.stop_gradient(coral(hs, ht))
            # The discrepancy is ramped like DANN's reversal: the activations mean little before the
            # head has learned. (Adding the class scores' discrepancy, as DAN does for its top layers,
            # measured lower target accuracy on shapes -> shapes-field.)
            return lam * (mmd(hs, ht) if self.loss_name == "mmd" else coral(hs, ht))

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            xs, xt = x
            with tf.GradientTape() as tape:
                hs = self.activations(xs, training=True, source=True)
                ht = self.activations(xt, training=True)
                probs = self.predictions(self.drop_out(hs, training=True))
                label_loss = self.compiled_loss(y, probs, sample_weight, regularization_losses=self.losses)
                adapt_loss = self.adaptation_loss(hs, ht)
                total = label_loss + self.weight * adapt_loss
            variables = self.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
            self.step_count.assign_add(1.0)
            self.compiled_metrics.update_state(y, probs, sample_weight)
            self.adapt_tracker.update_state(adapt_loss)
            return {**{m.name: m.result() for m in self.metrics if m.name != "adapt_loss"},
                    "adapt_loss": self.adapt_tracker.result()}

    return AdaptationTrainer


def _paired(source: Any, target: Any, seed: int, batch_size: int) -> Any:
    """((source batch, target batch), labels): the target cycles, shuffled anew, beside each source batch."""
    import tensorflow as tf

    target = target.shuffle(4096, seed=seed + 1, reshuffle_each_iteration=True).repeat().batch(batch_size)
    zipped = tf.data.Dataset.zip((source, target))
    return zipped.map(lambda s, t: ((s[0], t), s[1])).prefetch(tf.data.AUTOTUNE)


def _cached_inputs(
    config: RunConfig, model: Any, base: Any, ws: Path, sources: dict[str, Any], parts: dict[str, list],
    labeled: list, adapt_items: list, figures: dict[str, Any],
) -> tuple[Any, Any, Any, int]:
    """Source, target and validation data from the feature cache (a frozen backbone); source steps per epoch.

    With augmentation and augmented views (config.augment_views), the source images' features are those
    views, as in a plain run (core.engine.plain); the target and validation features are clean. With CORAL on
    features (recolors), the source's training features are re-coloured here, once.
    """
    import tensorflow as tf

    (info, root), (target_info, target_root) = sources["source"], sources["target"]
    target_config = config.with_changes(dataset_id=sources["target_id"])
    views = config.augment_views if config.augment.any() else 0
    clean = features.feature_extractor(model, base, augmented=False)
    augmented = features.feature_extractor(model, base, augmented=True) if views else clean

    def get(extractor, items, which_info, which_root, which_cache, n_views=0):
        x, fig = features.features_for(extractor, which_info, which_root, items, config, which_cache, n_views)
        for k in figures:
            figures[k] += fig[k]
        return x

    labels = np.array([label for _, label in parts["train"]], dtype=np.int32)
    train_x = get(augmented, parts["train"], info, root, features.cache_file(ws, config, views), views)
    if views:  # (views, n, d) -> every view of every image, its label beside it
        train_x, labels = train_x.reshape(views * len(labels), -1), np.tile(labels, views)
    target_cache = features.cache_file(ws, target_config, 0)
    target_x = get(clean, adapt_items, target_info, target_root, target_cache)
    if recolors(config):  # the source's features (not the labelled target images') take the target's colour
        train_x = recolor(train_x, *recolor_map(train_x, target_x, recolor_strength(config)))
    if labeled:
        train_x = np.concatenate([train_x, get(clean, labeled, target_info, target_root, target_cache)])
        labels = np.concatenate([labels, np.array([label for _, label in labeled], dtype=np.int32)])
    val_x = get(clean, parts["val"], info, root, features.cache_file(ws, config, 0))
    val_labels = np.array([label for _, label in parts["val"]], dtype=np.int32)
    source = tf.data.Dataset.from_tensor_slices((train_x, labels)).shuffle(
        len(labels), seed=config.seed, reshuffle_each_iteration=True)
    if views:  # one view per image per epoch on average, as train_dataset does
        source = source.repeat()
    val = features.eval_dataset(val_x, val_labels, config.batch_size)
    return source.batch(config.batch_size), tf.data.Dataset.from_tensor_slices(target_x), val, \
        len(parts["train"]) + len(labeled)


def _image_recolor(config: RunConfig, model: Any, base: Any, source: tuple[Path, list], target: tuple[Path, list]) \
        -> tuple[np.ndarray, np.ndarray]:
    """recolor_map for a phase that passes images (an opened backbone): one pass of the network as it is now over
    the source's training images and the target's images, without augmentation."""
    extractor = features.feature_extractor(model, base, augmented=False)

    def pooled(root: Path, items: list) -> np.ndarray:
        ds = tfdata.pipeline(root, items, config.image_size, tfdata.INFERENCE_BATCH, False, config.seed)
        return extractor.predict(ds, verbose=0)

    return recolor_map(pooled(*source), pooled(*target), recolor_strength(config))


def phase_inputs(
    config: RunConfig, plan_: dict[str, Any], model: Any, base: Any, phase: Any, ws: Path,
    info: dict[str, Any], parts: dict[str, list], epochs: int,
) -> tuple[Any, Any, Any, int, dict[str, Any]]:
    """The trainer, training and validation data and steps per epoch for one adaptation phase; plus figures.

    Frozen backbone that the feature cache can serve (core.spec.strategies.uses_feature_cache): source
    features (the run's cache, augmented views when asked) and target features computed once. Otherwise
    (an opened backbone, or augmentation without cached views): images of both domains each epoch, the
    source images through the model's augmentation.
    """
    root = datasets.dataset_path(config.dataset_id, ws)
    target_root = datasets.dataset_path(plan_["dataset_id"], ws)
    adapt_items = [(rel, 0) for rel in plan_["adapt"]]
    labeled = [tuple(item) for item in plan_["labeled"]]
    batch = config.batch_size
    figures = {"images": 0, "computed": 0, "seconds": 0.0}
    if strategies.uses_feature_cache(config, phase):
        sources = {"source": (info, root), "target": (datasets.load_dataset(plan_["dataset_id"], ws), target_root),
                   "target_id": plan_["dataset_id"]}
        source, target, val, n = _cached_inputs(config, model, base, ws, sources, parts, labeled, adapt_items, figures)
        front = None
    else:
        import tf_keras as keras

        source = tfdata.pipeline(root, parts["train"], config.image_size, batch, True, config.seed).unbatch()
        if labeled:
            source = source.concatenate(tfdata.pipeline(target_root, labeled, config.image_size, batch, False,
                                                        config.seed).unbatch())
        source = source.shuffle(1024, seed=config.seed).batch(batch)
        target = tfdata.pipeline(target_root, adapt_items, config.image_size, batch, False, config.seed).unbatch()
        target = target.map(lambda image, _: image)
        val = tfdata.pipeline(root, parts["val"], config.image_size, batch, False, config.seed)
        # Up to the pooling: the model's augmentation layer included, active while training.
        front = keras.Model(model.input, model.get_layer("pool").output, name="front")
        n = len(parts["train"]) + len(labeled)
        if recolors(config):  # (labelled target images in the source batches are re-coloured with them)
            figures["recolor"] = _image_recolor(config, model, base, (root, parts["train"]), (target_root, adapt_items))
    steps = -(-n // batch)
    trainer = adaptation_model(model, adapts(config), config.adapt_loss, config.adapt_weight, steps * epochs, front,
                               figures.pop("recolor", None))
    return trainer, _paired(source, target, config.seed, batch), val, steps, figures


# ---------------------------------------------------------------- the method


class Adaptation(Plain):
    """Every phase fits the adaptation trainer on paired source and target data; the companion is source-only."""

    id = "adaptation"

    def prepare(self, config: RunConfig, settle: Settle) -> tuple[RunConfig, list[str]]:
        """The settled config, with an adaptation layer added when the head has none."""
        config, notices = settle(config)
        config, more = prepare(config)
        return config, notices + more

    def data(self, run: Run, phase: Phase, epochs: int) -> PhaseData:
        """The adaptation trainer and its paired data (phase_inputs); a frozen phase reports its feature pass."""
        with run.scope():
            trainer, train, val, steps, fig = phase_inputs(run.config, run.target or {}, run.model, run.base, phase,
                                                           run.ws, run.info, run.parts, epochs)
        if strategies.uses_feature_cache(run.config, phase):
            views = run.config.augment_views if run.config.augment.any() else 0
            run.emit(events.FeaturePass(phase.name, fig["images"], fig["computed"], views, round(fig["seconds"], 3)))
        return PhaseData(trainer, train, val, steps)

    def finish(self, run_dir: Path, config: RunConfig, train: Train) -> dict[str, Any]:
        """The source-only baseline, when the run asks for it (compare_source_only)."""
        return source_only(run_dir, config, train) if config.compare_source_only else {}


def source_only(run_dir: Path, config: RunConfig, train: Train) -> dict[str, Any]:
    """The source-only baseline of an adapted run: the same network, split, data and epochs, adaptation weight 0
    and no re-colouring.

    It is a companion run; the adapted run's status gets both target accuracies and
    `adaptation_helped` (its target accuracy above the baseline's).
    """
    baseline = config.with_changes(adapt_weight=0.0, adapt_recolor=False, compare_source_only=False,
                                   compare_scratch=False, preset="").validate()
    baseline_dir, result = companion(run_dir, "source_only", baseline, train)
    if result["state"] != "done":
        return {"source_only_run": baseline_dir.name}
    adapted = (read_json(run_dir / "eval.json").get("target") or {}).get("accuracy")
    alone = (read_json(baseline_dir / "eval.json").get("target") or {}).get("accuracy")
    helped = None if adapted is None or alone is None else adapted > alone
    with runs.edit_status(run_dir) as status:
        status.figures.target_accuracy, status.figures.source_only_target_accuracy = adapted, alone
        status.verdicts.adaptation_helped = helped
    return {"source_only_run": baseline_dir.name, "target_accuracy": adapted,
            "source_only_target_accuracy": alone, "adaptation_helped": helped}


METHOD = Adaptation()
