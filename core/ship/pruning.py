"""Magnitude pruning of a trained run's model (TensorFlow Model Optimization), as a new run.

Pruning sets the smallest weights of each convolution and dense layer to zero while the network
is fine-tuned, so that it learns to do without them; a file of mostly zeros compresses far better
(gzip, or TensorFlow Lite's sparse format), which is what makes a model smaller to download.

How: the parent's model is rebuilt with every prunable inner layer wrapped by
`prune_low_magnitude` (a backbone nested as one layer is rebuilt too, so its own layers are
pruned), except layers under DENSE_BELOW weights, which stay dense while the others are pruned to
make up the asked share of zeros, the larger layers the more (layer_sparsities, Erdős-Rényi-Kernel);
sparsity rises from 0 to the target with tfmot's `PolynomialDecay` over the fine-tuning epochs on
the run's own training split (streamed with the project's tf.data pipeline: the feature cache does
not apply, since the backbone changes; the augmentation moves from the model into that pipeline),
the loss weighing the true labels against the parent's answers on the very augmented view the
child sees (distilled); BatchNorm
keeps the parent's statistics (measured again on the run's images they cost the unpruned parent of
the prune benchmark 15 points: its later layers were trained against the pretrained statistics);
`strip_pruning` removes the wrappers; the
weights go back into the parent's architecture, and the project's evaluator tests the result.
The child is a complete run folder (config.json, split.json, model.keras, eval.json, events) with
`pruned_from` and `sparsity` in its status, so Predictions, Compare and Export work on it as on
any run. Depthwise convolutions are not prunable in tfmot (their weights are kept as they are),
nor are BatchNorm layers and TF Hub layers.

TensorFlow and tfmot are imported only inside the functions that use them.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core import events, settings
from core.data import tfdata
from core.engine import distill, evaluation, modeling, training
from core.errors import PruningError, TransferLabError
from core.ship import export, runfiles
from core.spec import strategies
from core.store import datasets, runs
from core.store.files import read_json, write_json

PHASE = "prune"
REPORT = "prune.json"  # in the child's run folder
SPARSITY_RANGE = (0.05, 0.95)
EPOCHS_RANGE = (1, 50)
DEFAULT_SPARSITY = 0.5
DEFAULT_EPOCHS = 10
# Weight clustering after pruning (sparsity-preserving, tfmot): each pruned layer's non-zero weights share this many
# values, so the int8 file gzips far smaller; 0 turns it off. It fine-tunes CLUSTER_EPOCH_SHARE of the pruning epochs
# more, at CLUSTER_RATE_FACTOR x the run's fine-tuning rate.
CLUSTER_PHASE = "cluster"
CLUSTER_CHOICES = (0, 8, 16, 32, 64)
DEFAULT_CLUSTERS = 16
CLUSTER_EPOCH_SHARE = 0.3
CLUSTER_RATE_FACTOR = 1.0
# Layer kinds whose weights tfmot prunes (which weight of each), and kinds it cannot prune.
PRUNED_WEIGHT = {"Conv2D": "kernel", "Dense": "kernel", "SeparableConv2D": "pointwise_kernel", "Conv1D": "kernel",
                 "Conv3D": "kernel", "Conv2DTranspose": "kernel"}
NOT_PRUNABLE = {"DepthwiseConv2D": "depthwise_kernel"}
GZIP_LEVEL = 9
# Layers whose pruned weight has fewer values than this stay dense (the first convolution, the narrow early
# pointwise ones): they hold little of the file and much of the accuracy. The larger layers are pruned harder so
# that the share of zeros over all prunable weights is still the asked sparsity (each at most MAX_LAYER_SPARSITY).
DENSE_BELOW = 2000
MAX_LAYER_SPARSITY = 0.97
# How the zeros are shared among the pruned layers: 0 evenly; above 0 the larger layers get more of them
# (_erdos_renyi, 1 = Erdős-Rényi-Kernel). Strong pruning (above STRONG_SPARSITY) uses STRONG_ALLOCATION_POWER: on the
# prune benchmark at 75 % it lost 2.7 points where an even share lost 10.2 (0.5: 9.3); the wide last 1x1 convolution
# goes to ~89 % zeros, the head and the narrow layers keep more. At 50 % it cost 1.8 points and made the int8 file
# gzip to 0.73x instead of 0.68x (its narrow layers stay whole, so they are not clustered either), so milder pruning
# shares the zeros evenly.
ALLOCATION_POWER = 0.0
STRONG_ALLOCATION_POWER = 1.0
# Share of the parent's answers in the target while pruning (the rest is the true label): the child learns from its
# parent what the pruned weights knew. 0 turns it off.
DISTILL_WEIGHT = 0.5
# Temperature of the parent's answers in the loss (distill.distillation_loss: KL at T, times T^2; 1 = as given).
DISTILL_TEMPERATURE = 1.0
# The parent answers the very augmented view the child sees (the augmentation moves from the model into the data).
CONSISTENT_TEACHER = True
AUGMENTATION = "augmentation"  # the classifier's augmentation layer (core.engine.augment)
# The fine-tuning rate while pruning, as a multiple of the run's own fine-tuning rate.
RATE_FACTOR = 1.0
# The sparsity ramp: it ends after this share of the epochs, shaped as tfmot's PolynomialDecay with this power (3:
# most weights go early, 1: evenly).
RAMP_SHARE = 0.5
RAMP_POWER = 3
# Strong pruning (above STRONG_SPARSITY) fine-tunes harder: the rate x STRONG_RATE_FACTOR and the ramp over the first
# STRONG_RAMP_SHARE of the epochs (more of them left to recover). On the prune benchmark at 75 % this lost 12.9 points
# instead of 17.3; at 50 % the higher rate cost 2.2 points more, so milder pruning keeps the run's own rate.
STRONG_SPARSITY = 0.7
STRONG_RATE_FACTOR = 3.0
STRONG_RAMP_SHARE = 0.3
# BatchNorm's scale and offset (gamma, beta) train while pruning; its moving statistics stay the parent's either way.
TRAIN_BATCHNORM_AFFINE = False


# ---------------------------------------------------------------- requests and the child run


def check_request(sparsity: float, epochs: int, clusters: int = 0) -> None:
    """A plain sentence unless the sparsity is a fraction in range, the epochs a small whole number and the clusters
    one of CLUSTER_CHOICES."""
    low, high = SPARSITY_RANGE
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not low <= float(sparsity) <= high:
        raise PruningError(f"The sparsity is the share of weights set to zero, between {low:g} and {high:g} "
                           f"(0.5 = half of them), not {sparsity!r}.")
    lo, hi = EPOCHS_RANGE
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not lo <= epochs <= hi:
        raise PruningError(f"Pruning fine-tunes for {lo} to {hi} epochs, not {epochs!r}.")
    if isinstance(clusters, bool) or clusters not in CLUSTER_CHOICES:
        raise PruningError(f"Weight clustering shares {', '.join(map(str, CLUSTER_CHOICES[1:]))} values per layer, "
                           f"or 0 for none, not {clusters!r}.")


def is_pruned(status: dict[str, Any]) -> bool:
    """True for a run made by pruning another."""
    return bool(status.get("pruned_from"))


def create_child(parent_dir: Path, sparsity: float, epochs: int = DEFAULT_EPOCHS, clusters: int = DEFAULT_CLUSTERS,
                 ) -> Path:
    """A new run folder for the pruned model: the parent's config and split, a queued status naming the parent."""
    check_request(sparsity, epochs, clusters)
    runfiles.check_ready(parent_dir)
    if runs.read_status(parent_dir).get("state") != "done":
        raise PruningError(f"Run '{parent_dir.name}' was cancelled before it was tested; prune a finished run.")
    ws = parent_dir.parent.parent
    child = runs.create_run(runs.load_config(parent_dir), ws, pruned_from=parent_dir.name)
    shutil.copyfile(parent_dir / "split.json", child / "split.json")
    with runs.edit_status(child) as status:
        status.figures.sparsity, status.figures.prune_epochs = float(sparsity), int(epochs)
        status.figures.clusters = int(clusters)
    return child


def parent_of(child_dir: Path) -> Path:
    """The run a pruned run was made from (RunNotFound when it was deleted since)."""
    parent = runs.read_status(child_dir).get("pruned_from")
    if not parent:
        raise PruningError(f"Run '{child_dir.name}' was not made by pruning.")
    return runs.run_path(parent, child_dir.parent.parent)


# ---------------------------------------------------------------- wrapping a model for pruning


def _kind(layer: Any) -> str:
    return type(layer).__name__


def _is_model(layer: Any) -> bool:
    import tf_keras as keras

    return isinstance(layer, keras.Model)


def _prunable(layer: Any) -> bool:
    return _kind(layer) in PRUNED_WEIGHT


def _contains_prunable(model: Any) -> bool:
    return any(_contains_prunable(layer) if _is_model(layer) else _prunable(layer) for layer in model.layers)


def _linear_chain(model: Any) -> bool:
    """True for a functional model whose layers form one chain, each fed by the one before (the classifier)."""
    try:
        config = model.get_config()
    except Exception:  # noqa: BLE001 - a model that cannot describe itself is cloned, not rebuilt
        return False
    entries = config.get("layers", [])
    if len(config.get("input_layers", [])) != 1 or len(config.get("output_layers", [])) != 1 or len(entries) < 2:
        return False
    for before, entry in zip(entries, entries[1:]):
        nodes = entry.get("inbound_nodes", [])
        if len(nodes) != 1 or len(nodes[0]) != 1 or nodes[0][0][0] != before["name"]:
            return False
    return True


def wrap_for_pruning(model: Any, schedule: Any) -> Any:
    """The model rebuilt with every prunable layer, nested ones included, wrapped by prune_low_magnitude.

    `schedule`: one tfmot pruning schedule for every layer, or a dict {layer name: schedule} (a prunable
    layer not in it stays dense, see layer_schedules).

    Layers are reused, so the weights are the trained ones. A chain (the classifier, the backbone
    wrapper) is called again without its call arguments: `base(x, training=False)` would keep the
    pruning wrappers inside from updating their masks; BatchNorm is frozen instead
    (freeze_batchnorm). Other graphs (the backbone network) are cloned with tf_keras's clone_model.
    PruningError when nothing in the model can be pruned.
    """
    import tensorflow_model_optimization as tfmot

    if not _contains_prunable(model):
        kinds = sorted({_kind(layer) for layer in _flat_layers(model) if layer.weights})
        raise PruningError(
            "This model has no layer that magnitude pruning can thin out (only convolutions and dense layers can be "
            f"pruned; it has {', '.join(kinds) or 'no weighted layers'}), so pruning would not make it smaller.")

    def one(layer: Any) -> Any:
        own = schedule.get(layer.name) if isinstance(schedule, dict) else schedule
        if _prunable(layer) and own is not None:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=own)
        return layer

    return _rebuild(model, one)


def _rebuild(model: Any, wrap: Callable[[Any], Any]) -> Any:
    """The model rebuilt with each inner layer replaced by wrap(layer) (nested models opened, see wrap_for_pruning)."""
    import tf_keras as keras

    def one(layer: Any) -> Any:
        if _is_model(layer):
            return rebuild(layer) if _contains_prunable(layer) else layer
        return wrap(layer)

    def rebuild(sub: Any) -> Any:
        if not _linear_chain(sub):
            return keras.models.clone_model(sub, clone_function=one)
        inputs = keras.Input(sub.input_shape[1:], dtype=sub.inputs[0].dtype, name=sub.layers[0].name)  # texts: strings
        x = inputs
        for layer in sub.layers[1:]:
            x = one(layer)(x)
        return keras.Model(inputs, x, name=sub.name)

    return rebuild(model)


def _flat_layers(model: Any) -> list[Any]:
    """Every layer inside a model, nested models opened, wrappers opened to the layer they wrap."""
    out = []
    for layer in model.layers:
        if _is_model(layer):
            out += _flat_layers(layer)
        else:
            out.append(getattr(layer, "layer", layer) if _kind(layer) in WRAPPERS else layer)
    return out


def freeze_batchnorm(model: Any, affine: bool = False) -> None:
    """Every other layer trains during pruning; BatchNorm keeps its statistics (inference mode when frozen).

    affine: BatchNorm's scale and offset train too, while it still normalises with the parent's moving statistics
    (always inference mode, so they are never updated)."""
    from tf_keras import layers as kl

    for layer in _flat_layers(model):
        norm = isinstance(layer, kl.BatchNormalization)
        layer.trainable = affine or not norm
        if norm and affine:
            layer._get_training_value = lambda training=None: False  # noqa: SLF001 - tf_keras has no public switch


WRAPPERS = ("PruneLowMagnitude", "ClusterWeights")  # tfmot's wrapper layers (pruning, clustering)


def wrappers(model: Any) -> list[str]:
    """Names of the pruning or clustering wrappers left anywhere in a model (none after strip, strip_clusters)."""
    out = []
    for layer in model.layers:
        if _is_model(layer):
            out += wrappers(layer)
        elif _kind(layer) in WRAPPERS:
            out.append(layer.name)
    return out


def strip(model: Any) -> Any:
    """tfmot's strip_pruning: the same network without the wrappers (the masks already applied)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def cluster_epochs(epochs: int) -> int:
    """Fine-tuning epochs of the clustering phase after `epochs` of pruning (CLUSTER_EPOCH_SHARE, at least 1)."""
    return max(1, round(epochs * CLUSTER_EPOCH_SHARE))


def wrap_for_clustering(model: Any, names: set[str], clusters: int) -> Any:
    """The (stripped, pruned) model rebuilt with the named layers wrapped by tfmot's cluster_weights: while it
    fine-tunes, each one's weights take one of `clusters` shared values (centroids, k-means++ to start), its zeros
    kept zero (preserve_sparsity). A layer too small for that many values stays as it is."""
    import tensorflow_model_optimization as tfmot

    clustering = tfmot.clustering.keras

    def one(layer: Any) -> Any:
        if layer.name not in names or not _prunable(layer):
            return layer
        layer.trainable = True  # tfmot clusters trainable weights only (the parent may have frozen this layer)
        return clustering.cluster_weights(layer, number_of_clusters=clusters, preserve_sparsity=True,
                                          cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)

    return _rebuild(model, one)


def strip_clusters(model: Any) -> Any:
    """tfmot's strip_clustering: the same network without the wrappers, each weight replaced by its shared value."""
    import tensorflow_model_optimization as tfmot

    return tfmot.clustering.keras.strip_clustering(model)


def copy_weights(source: Any, target: Any) -> None:
    """Each layer's weights from source into the layer of the same name in target (nested models opened)."""
    by_name = {layer.name: layer for layer in _flat_layers(source)}
    for layer in _flat_layers(target):
        if layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())


def sparsity_by_kind(model: Any) -> dict[str, Any]:
    """Zeros among the weights each layer kind has, the pruned weight of prunable kinds, and parameters."""
    kinds: dict[str, dict[str, Any]] = {}
    total = nonzero = 0
    for layer in _flat_layers(model):
        for w in layer.weights:
            value = w.numpy()
            total += value.size
            nonzero += int(np.count_nonzero(value))
        kind = _kind(layer)
        name = PRUNED_WEIGHT.get(kind) or NOT_PRUNABLE.get(kind)
        if name is None or not hasattr(layer, name):
            continue
        value = getattr(layer, name).numpy()
        row = kinds.setdefault(kind, {"prunable": kind in PRUNED_WEIGHT, "layers": 0, "weights": 0, "zeros": 0})
        row["layers"] += 1
        row["weights"] += int(value.size)
        row["zeros"] += int(value.size - np.count_nonzero(value))
    for row in kinds.values():
        row["sparsity"] = round(row["zeros"] / row["weights"], 6) if row["weights"] else 0.0
    prunable = [r for r in kinds.values() if r["prunable"]]
    weights = sum(r["weights"] for r in prunable)
    return {
        "kinds": kinds,
        "prunable_sparsity": round(sum(r["zeros"] for r in prunable) / weights, 6) if weights else 0.0,
        "parameters": int(total), "nonzero_parameters": int(nonzero),
        "overall_sparsity": round(1 - nonzero / total, 6) if total else 0.0,
    }


# ---------------------------------------------------------------- fine-tuning while pruning


def schedule_steps(steps_per_epoch: int, epochs: int, share: float | None = None) -> tuple[int, int]:
    """(begin, end) steps of the sparsity ramp: the target is reached after the first `share` of the epochs
    (RAMP_SHARE, a half), so the rest recover at the final sparsity (one epoch: at its last step)."""
    share = RAMP_SHARE if share is None else share
    end = steps_per_epoch * math.ceil(epochs * share) if epochs >= 2 else steps_per_epoch - 1
    return 0, max(1, end)


def _pruned_size(layer: Any) -> int:
    return int(np.prod(getattr(layer, PRUNED_WEIGHT[_kind(layer)]).shape))


def layer_sparsities(model: Any, sparsity: float) -> dict[str, float]:
    """Each prunable layer's own sparsity, so that zeros make up `sparsity` of all prunable weights.

    Layers with fewer than DENSE_BELOW weights stay dense (absent from the answer) and the others share
    their zeros evenly, or above STRONG_SPARSITY the larger ones more (_erdos_renyi); where an even share
    would pass MAX_LAYER_SPARSITY, the largest of the dense layers are pruned too (evenly), until the asked
    share fits. A layer the allocation leaves whole is absent from the answer as well.
    """
    sizes = {layer.name: _pruned_size(layer) for layer in _flat_layers(model) if _prunable(layer)}
    zeros = sparsity * sum(sizes.values())
    pruned = {name for name, n in sizes.items() if n >= DENSE_BELOW}
    for name in sorted(set(sizes) - pruned, key=lambda n: -sizes[n]):
        if pruned and zeros <= MAX_LAYER_SPARSITY * sum(sizes[n] for n in pruned):
            break
        pruned.add(name)
    share = min(MAX_LAYER_SPARSITY, zeros / sum(sizes[n] for n in pruned))
    power = STRONG_ALLOCATION_POWER if sparsity > STRONG_SPARSITY else ALLOCATION_POWER
    if not power or share >= MAX_LAYER_SPARSITY:
        return {name: share for name in sizes if name in pruned}
    shapes = {layer.name: _pruned_shape(layer) for layer in _flat_layers(model) if layer.name in pruned}
    return _erdos_renyi(shapes, zeros, power)


def _pruned_shape(layer: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(layer, PRUNED_WEIGHT[_kind(layer)]).shape)


def _erdos_renyi(shapes: dict[str, tuple[int, ...]], zeros: float, power: float) -> dict[str, float]:
    """Per-layer sparsities holding `zeros` zeros in all: each layer keeps a share of its weights in proportion to
    (sum of its dimensions / its size) ** power (Erdős-Rényi-Kernel, Evci et al. 2020, at power 1), so the
    large layers (the wide last convolution) are pruned harder and the narrow ones lighter; between dense and
    MAX_LAYER_SPARSITY each."""
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    score = {name: (sum(shape) / sizes[name]) ** power for name, shape in shapes.items()}
    floor = 1.0 - MAX_LAYER_SPARSITY

    def kept(scale: float) -> dict[str, float]:
        return {name: min(1.0, max(floor, scale * score[name])) for name in shapes}

    low, high = 0.0, 1.0 / min(score.values())
    target = sum(sizes.values()) - zeros
    for _ in range(100):  # bisection on the scale: the kept weights grow with it
        middle = (low + high) / 2
        low, high = (middle, high) if sum(sizes[n] * d for n, d in kept(middle).items()) < target else (low, middle)
    return {name: 1.0 - density for name, density in kept(high).items() if density < 1.0}


def layer_schedules(model: Any, sparsity: float, begin: int, end: int) -> dict[str, Any]:
    """A tfmot PolynomialDecay per pruned layer, from 0 to its own sparsity (layer_sparsities) between two steps."""
    import tensorflow_model_optimization as tfmot

    return {name: tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=share, begin_step=begin,
                                                       end_step=end, frequency=1, power=RAMP_POWER)
            for name, share in layer_sparsities(model, sparsity).items()}


def distilled(data: Any, teacher: Any, num_classes: int, augmenter: Any = None,
              class_weight: dict[int, float] | None = None) -> Any:
    """(inputs, int labels) batches as (inputs, packed targets[, sample weights]) for distill.distillation_loss:
    each row [label, the teacher's probabilities] (one-hot without a teacher). With an augmenter the batch is
    augmented here and the teacher answers that very view, the one the child is trained on (a teacher that sees
    the clean image while the child sees a flipped or rotated one teaches it the wrong target for that view)."""
    import tensorflow as tf

    table = None
    if class_weight:
        table = tf.constant([class_weight.get(i, 1.0) for i in range(num_classes)], tf.float32)

    def soft(x: Any, y: Any) -> tuple[Any, ...]:
        if augmenter is not None:
            x = augmenter(x, training=True)
        answer = tf.one_hot(y, num_classes) if teacher is None else teacher(x, training=False)
        packed = tf.concat([tf.cast(y, tf.float32)[:, None], tf.cast(answer, tf.float32)], axis=-1)
        return (x, packed) if table is None else (x, packed, tf.gather(table, y))

    return data.map(soft)


def split_augmentation(model: Any) -> tuple[Any, Any]:
    """(the model without its augmentation layer, that layer) for a chain that has one (the classifier), so that
    the data pipeline augments and the teacher sees the same view; (model, None) otherwise."""
    import tf_keras as keras

    names = [layer.name for layer in model.layers]
    if not CONSISTENT_TEACHER or AUGMENTATION not in names or not _linear_chain(model):
        return model, None
    inputs = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype, name=model.layers[0].name)
    x = inputs
    for layer in model.layers[1:]:
        x = x if layer.name == AUGMENTATION else layer(x)
    return keras.Model(inputs, x, name=model.name), model.get_layer(AUGMENTATION)


def prune(child_dir: Path, listener: events.Listener | None = None,
          should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Fine-tune the parent's model while pruning it, save it in the child run, evaluate; status says how it ended."""
    should_stop = should_stop or (lambda: runs.cancel_requested(child_dir))

    def emit(event: events.Event) -> None:
        runs.append_event(child_dir, events.to_dict(event))
        if listener is not None:
            listener(event)

    runs.mark_running(child_dir)
    try:
        return _prune(child_dir, emit, should_stop)
    except TransferLabError as exc:
        runs.mark_ended(child_dir, "failed", str(exc))
        raise
    except BaseException as exc:
        state = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        runs.mark_ended(child_dir, state, f"Pruning stopped unexpectedly ({type(exc).__name__}).",
                        detail=traceback.format_exc(limit=20))
        raise


def _capped(epochs: int, emit: events.Listener) -> int:
    """The fine-tuning epochs within the server's cap (TL_MAX_EPOCHS, as every training phase), said when it bites."""
    cap = settings.max_epochs()
    if cap is None or epochs <= cap:
        return epochs
    emit(events.Notice(f"This server limits training to {cap} epoch(s) per phase, so this pruning fine-tunes at most "
                       "that many."))
    return cap


def _prune(child_dir: Path, emit: events.Listener, should_stop: Callable[[], bool]) -> dict[str, Any]:
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    status = runs.read_status(child_dir)
    parent_dir = parent_of(child_dir)
    sparsity, epochs, clusters = float(status["sparsity"]), int(status["prune_epochs"]), int(status.get("clusters") or 0)
    check_request(sparsity, epochs, clusters)
    epochs = _capped(epochs, emit)
    config = runs.load_config(child_dir)
    split = read_json(child_dir / "split.json")
    if not split["train"]:
        raise PruningError(f"Run '{parent_dir.name}' has no training images in its split, so it cannot be fine-tuned.")

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy("float32")
    model, augmenter = split_augmentation(runfiles.load_model(parent_dir))
    steps = math.ceil(len(split["train"]) / config.batch_size)
    shares = layer_sparsities(model, sparsity)
    strong = sparsity > STRONG_SPARSITY
    ramp = schedule_steps(steps, epochs, STRONG_RAMP_SHARE if strong else RAMP_SHARE)
    pruned = wrap_for_pruning(model, layer_schedules(model, sparsity, *ramp))
    data = _fine_tune_data(parent_dir, config, child_dir, split, int(model.output_shape[-1]), augmenter)
    phases = 2 if clusters else 1
    emit(events.Notice(f"Pruning run {parent_dir.name} to {sparsity:.0%} sparsity over {epochs} epoch(s) of "
                       "fine-tuning on its training images, learning from the parent's answers as well"
                       + (", the largest layers taking the most zeros" if strong else "")
                       + (f"; then {clusters} shared values per pruned layer (weight clustering)." if clusters else ".")))
    started = time.monotonic()
    progress = _phase(pruned, data, (PHASE, 1, phases, epochs, steps), config, child_dir, emit, should_stop,
                      [tfmot.sparsity.keras.UpdatePruningStep()], STRONG_RATE_FACTOR if strong else RATE_FACTOR)
    stripped = strip(pruned)
    if clusters and not progress.cancelled:
        clustered = wrap_for_clustering(stripped, set(shares), clusters)
        progress = _phase(clustered, data, (CLUSTER_PHASE, 2, phases, cluster_epochs(epochs), steps), config,
                          child_dir, emit, should_stop, [], CLUSTER_RATE_FACTOR)
        stripped = strip_clusters(clustered)
    seconds = round(time.monotonic() - started, 2)
    if progress.cancelled:
        runs.mark_ended(child_dir, "cancelled", "Pruning was cancelled before it reached its sparsity, so no model was "
                        "kept.", train_seconds=seconds)
        return {"state": "cancelled", "train_seconds": seconds}

    final = runfiles.load_model(parent_dir)  # the parent's very architecture, with the pruned weights
    copy_weights(stripped, final)
    final.save(child_dir / "model.keras")
    reached = sparsity_by_kind(final)
    report = evaluation.evaluate(child_dir, model=final)
    result = {
        "state": "done", "train_seconds": seconds, "test_accuracy": report["accuracy"],
        "val_accuracy": progress.last.get("val_accuracy"), "sparsity_reached": reached["prunable_sparsity"],
    }
    with runs.edit_status(child_dir) as status:
        status.state, status.timings.finished, status.timings.train_seconds = "done", time.time(), seconds
        status.figures.test_accuracy, status.figures.val_accuracy = report["accuracy"], result["val_accuracy"]
        status.figures.sparsity_reached = reached["prunable_sparsity"]
    return result


def _phase(model: Any, data: tuple[Any, Any], phase: tuple[str, int, int, int, int], config: Any, child_dir: Path,
           emit: events.Listener, should_stop: Callable[[], bool], callbacks: list[Any], rate_factor: float) -> Any:
    """One fine-tuning phase (pruning, then clustering) of a wrapped model on the distilled data; its progress
    callback (cancelled, last metrics). PruningError when the loss became NaN."""
    name, index, phases, epochs, steps = phase
    freeze_batchnorm(model, TRAIN_BATCHNORM_AFFINE)
    rate = config.fine_tune_learning_rate * rate_factor
    model.compile(optimizer=modeling.optimizer(config.optimizer, rate), metrics=[distill.packed_accuracy()],
                  loss=distill.distillation_loss(DISTILL_TEMPERATURE, DISTILL_WEIGHT))
    emit(events.PhaseStart(name, index, phases, epochs, steps, modeling.count_trainable(model)))
    with runs.edit_status(child_dir) as status:
        status.progress.phase, status.progress.phase_index, status.progress.phases = name, index, phases
    progress = training.event_callback(emit, name, epochs, steps, should_stop)
    model.fit(data[0], validation_data=data[1], epochs=epochs, verbose=0, callbacks=[*callbacks, progress])
    emit(events.PhaseEnd(name, progress.epochs_run, False))
    if progress.nan:
        raise PruningError("The loss became NaN (not a number) while pruning, so it stopped; prune less at once "
                           "(a lower sparsity) or over more epochs.")
    return progress


def _fine_tune_data(parent_dir: Path, config: Any, child_dir: Path, split: dict[str, Any], classes: int,
                    augmenter: Any = None) -> tuple[Any, Any]:
    """The (training, validation) data of every phase: the training images, augmented (by `augmenter`, or by the
    model when None), with the parent's answer on the same view beside the label (distilled, weighed by the run's
    class weights); validation with the label alone."""
    root = datasets.dataset_path(config.dataset_id, child_dir.parent.parent)
    teacher = runfiles.load_model(parent_dir) if DISTILL_WEIGHT > 0 else None
    train = tfdata.pipeline(root, [tuple(i) for i in split["train"]], config.image_size, config.batch_size, True,
                            config.seed)
    weights = strategies.class_weights(config.class_weights, np.array([label for _, label in split["train"]]))
    val_items = [tuple(i) for i in split["val"]]
    val = tfdata.pipeline(root, val_items, config.image_size, config.batch_size, False, config.seed) if val_items else None
    return (distilled(train, teacher, classes, augmenter, weights),
            distilled(val, None, classes) if val is not None else None)


def prune_run(parent_dir: Path, sparsity: float, epochs: int = DEFAULT_EPOCHS,
              listener: events.Listener | None = None, clusters: int = DEFAULT_CLUSTERS) -> tuple[Path, dict[str, Any]]:
    """create_child + prune, in the foreground (the command line)."""
    child = create_child(parent_dir, sparsity, epochs, clusters)
    return child, prune(child, listener)


# ---------------------------------------------------------------- the report


def gzipped_size(path: Path) -> int:
    """Bytes of the file once gzipped (how much a download really costs)."""
    return len(gzip.compress(path.read_bytes(), GZIP_LEVEL))


def sparse_format(path: Path) -> bool | None:
    """True when a TFLite file stores some tensor in the sparse format (None without LiteRT to read it)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    return any(d.get("sparsity_parameters") for d in Interpreter(model_path=str(path)).get_tensor_details())


def _files(run_dir: Path, tflite: dict[str, Any], keras_file: Path | None = None) -> dict[str, Any]:
    keras_file = keras_file or run_dir / "model.keras"
    rows = {"keras": {"file": "model.keras", "bytes": keras_file.stat().st_size, "gzip_bytes": gzipped_size(keras_file)}}
    for format_id, row in tflite["variants"].items():
        path = runfiles.exports_dir(run_dir) / row["file"]
        rows[format_id] = {"file": row["file"], "bytes": row["bytes"], "gzip_bytes": gzipped_size(path),
                           "accuracy": row["accuracy"], "ms_per_image": row["ms_per_image"],
                           "agreement": row["agreement"], "sparse_format": sparse_format(path)}
    return rows


def measure(child_dir: Path, format_ids: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Sparsity per layer kind, parameters, file sizes raw and gzipped (model.keras and each TFLite variant, made
    with the sparsity optimisation and measured with LiteRT on the test split), against the parent; prune.json."""
    status = runs.read_status(child_dir)
    if status.get("state") != "done":
        raise PruningError(f"Run '{child_dir.name}' has no finished pruned model (state: {status.get('state')}).")
    parent_dir = parent_of(child_dir)
    model = runfiles.load_model(child_dir)
    reached = sparsity_by_kind(model)
    parent_reached = sparsity_by_kind(runfiles.load_model(parent_dir))
    child_files = _files(child_dir, export.report(child_dir, format_ids))
    # The trainer's model.keras also holds the optimizer's state; the pruned one holds weights only. The parent's
    # weights are saved the same way for a fair comparison (its own file's size is kept as well).
    resaved = child_dir / f".parent-{os.getpid()}.keras"
    try:
        runfiles.load_model(parent_dir).save(resaved)
        parent_files = _files(parent_dir, export.report(parent_dir, format_ids), resaved)
    finally:
        resaved.unlink(missing_ok=True)
    parent_files["keras"]["trainer_file_bytes"] = (parent_dir / "model.keras").stat().st_size
    child_eval, parent_eval = read_json(child_dir / "eval.json"), read_json(parent_dir / "eval.json")
    for format_id, row in child_files.items():
        base = parent_files.get(format_id)
        if base:
            row["vs_parent"] = round(row["bytes"] / base["bytes"], 4)
            row["gzip_vs_parent"] = round(row["gzip_bytes"] / base["gzip_bytes"], 4)
    result = {
        "run": child_dir.name, "parent": parent_dir.name,
        "sparsity": status["sparsity"], "epochs": status["prune_epochs"], "clusters": status.get("clusters") or 0,
        "sparsity_reached": reached["prunable_sparsity"],
        "kinds": reached["kinds"],
        "not_prunable": ("Depthwise convolutions are not prunable in TensorFlow Model Optimization, so their weights "
                         "are kept whole; BatchNorm layers, biases and TF Hub layers are not pruned either."),
        "sparse_note": ("TensorFlow Lite files are converted with the sparsity optimisation; a variant whose sparse "
                        "file LiteRT's default CPU runtime (XNNPACK) refuses, such as full int8, keeps the dense "
                        "layout, whose zeros still shrink when gzipped (sparse_format says which)."),
        "parameters": reached["parameters"], "nonzero_parameters": reached["nonzero_parameters"],
        "overall_sparsity": reached["overall_sparsity"],
        "parent_nonzero_parameters": parent_reached["nonzero_parameters"],
        "test_accuracy": child_eval["accuracy"], "parent_test_accuracy": parent_eval["accuracy"],
        "change_points": round(100 * (child_eval["accuracy"] - parent_eval["accuracy"]), 2),
        "ms_per_image": child_eval.get("ms_per_image"), "parent_ms_per_image": parent_eval.get("ms_per_image"),
        "n": child_eval["n"],
        "files": child_files, "parent_files": parent_files,
        "train_seconds": status.get("train_seconds"),
    }
    write_json(child_dir / REPORT, result)
    return result


def cached_report(child_dir: Path) -> dict[str, Any] | None:
    """prune.json as last written, without measuring anything."""
    try:
        return read_json(child_dir / REPORT)
    except (OSError, ValueError):
        return None


def children(parent_dir: Path) -> list[runs.RunInfo]:
    """Runs pruned from this one, newest first."""
    return [r for r in runs.list_runs(parent_dir.parent.parent) if r.status.get("pruned_from") == parent_dir.name]

