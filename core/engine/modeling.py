"""Build the classifier (augmentation -> backbone -> head), switch what trains, load saved models.

The backbone's convolutional groups, used by gradual unfreezing, are found from its graph
(conv_groups); so are the measured figures of the backbone registry (write_facts).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import settings
from core.engine import inputs as model_inputs
from core.engine import layers, networks, texts
from core.errors import ConfigError, RunStateError
from core.spec import backbones, strategies
from core.spec.config import RunConfig
from core.spec.strategies import Phase
from core.store import runs
from core.store.files import atomic_target

if TYPE_CHECKING:
    import tf_keras as keras


def pooling_layer(pooling: str, feature_rank: int) -> keras.layers.Layer:
    """The head's first layer, named "pool": it turns the backbone's feature map into one vector."""
    import tf_keras as keras
    from tf_keras import layers as kl

    if feature_rank == 2:
        return kl.Identity(name="pool")  # a TF Hub feature vector is pooled already
    if pooling == "avg":
        return kl.GlobalAveragePooling2D(name="pool")
    if pooling == "max":
        return kl.GlobalMaxPooling2D(name="pool")
    if pooling == "maxpool_flatten":
        # Keeps a coarse layout of where things are (2x2 windows), unlike global pooling.
        return keras.Sequential([kl.MaxPooling2D(2, padding="same"), kl.Flatten()], name="pool")
    return kl.Flatten(name="pool")


def build(config: RunConfig, num_classes: int) -> tuple[keras.Model, keras.Model]:
    """The whole classifier for its kind's raw input (images: 0-255 RGB), and its backbone sub-model."""
    spec = backbones.get(config.backbone)
    size = config.image_size
    base = networks.build_base(spec, size, config.weights)
    inputs = model_inputs.keras_input(config)  # the kind's raw input (images: (S, S, 3) 0-255 pixels)
    x = inputs
    aug = model_inputs.of_config(config).augmentation(config)
    if aug is not None:
        x = aug(x)
    # Pretrained BatchNorm statistics must stay in inference mode, even when layers are later
    # unfrozen for fine-tuning, or the first updates wreck what was learned (Keras guide).
    # A network trained from scratch needs BatchNorm to learn its statistics.
    x = base(x, training=False) if config.weights != "none" else base(x)
    x = pooling_layer(config.head.pooling, len(base.output_shape))(x)
    return classifier(inputs, x, config, num_classes), base


def classifier(inputs: Any, pooled: Any, config: RunConfig, num_classes: int) -> keras.Model:
    """The classifier from its input to the head's output, the head (config.head) put on the pooled features.

    A study's trials that train the head alone put each new head on the same pooled features (core.engine.trials).
    """
    import tf_keras as keras
    from tf_keras import layers as kl

    head = config.head
    x = pooled
    reg = keras.regularizers.l2(head.l2) if head.l2 > 0 else None
    if head.hidden_units:
        x = kl.Dropout(head.dropout, name="hidden_dropout")(x)
        x = kl.Dense(head.hidden_units, activation="relu", kernel_regularizer=reg, name="hidden")(x)
    x = kl.Dropout(head.dropout, name="dropout")(x)
    # float32 scores even under mixed precision, where float16 softmax loses small probabilities.
    outputs = kl.Dense(num_classes, activation="softmax", kernel_regularizer=reg, dtype="float32",
                           name="predictions")(x)
    return keras.Model(inputs, outputs, name="transferlab_classifier")


# ---------------------------------------------------------------- layer groups, from the graph


def network(base: keras.Model) -> Any:
    """The Keras application (or TF Hub layer) inside the preprocessing wrapper."""
    return base.layers[-1]


def _has_trainable(layer: Any) -> bool:
    return any(getattr(w, "trainable", True) for w in layer.weights)


def _height(shape: Any) -> int | None:
    return shape[1] if isinstance(shape, tuple) and len(shape) == 4 else None


def conv_groups(net: Any) -> list[list[Any]]:
    """The network's layers split into convolutional groups, bottom (the stem) first.

    Found from the graph, for every family alike: a group is a stage of the network, all layers
    computing at one resolution. A layer starts a new stage when it downsamples (a stride, or a
    weighted layer that at least halves the resolution). Blocks are never split: where no
    connection skips over a layer, the graph has a cut; a block is what lies between two cuts
    (a ResNet block ends at its Add, a DenseNet block at its Concatenate), and a block spanning
    two stages belongs wholly to the later one. Stages without trainable weights join the next.
    """
    from tf_keras import layers as kl

    if not hasattr(net, "layers"):
        return [[net]]  # a TF Hub layer is opaque: one group
    net_layers = net.layers
    index = {id(layer): i for i, layer in enumerate(net_layers)}
    parents: list[list[int]] = []
    for layer in net_layers:
        found = []
        for node in layer.inbound_nodes:
            for parent in node.parent_nodes:
                j = index.get(id(parent.layer))
                if j is not None and j not in found:
                    found.append(j)
        parents.append(found)

    # Stage of each layer: the number of downsamplings on the way to it.
    stage = [0] * len(net_layers)
    for i, layer in enumerate(net_layers):
        if not parents[i]:
            continue
        stage[i] = max(stage[p] for p in parents[i])
        out_h = _height(layer.output_shape)
        in_h = max((_height(net_layers[p].output_shape) or 0) for p in parents[i])
        strides = getattr(layer, "strides", None) or (1,)
        if out_h and in_h and out_h < in_h and (max(strides) > 1 or (layer.weights and 2 * out_h <= in_h + 1)):
            stage[i] += 1

    # Cuts: layers no connection skips over. Count, for each position, the edges spanning it.
    spans = [0] * (len(net_layers) + 1)
    for i, ps in enumerate(parents):
        for p in ps:
            if i - p > 1:
                spans[p + 1] += 1
                spans[i] -= 1
    block: list[int] = []
    running = 0
    for i in range(len(net_layers)):
        running += spans[i]
        block.append(i)
        if running == 0 or i == len(net_layers) - 1:
            stages = {stage[j] for j in block}
            if len(stages) == 2:  # a downsampling block: wholly in its later stage
                for j in block:
                    stage[j] = stage[block[-1]]
            block = []

    ordered = sorted(set(stage))
    # The input placeholder belongs to no group (its automatic name changes from build to build).
    kept = [i for i, layer in enumerate(net_layers) if not isinstance(layer, kl.InputLayer)]
    groups = [[net_layers[i] for i in kept if stage[i] == s] for s in ordered]
    merged: list[list[Any]] = []
    pending: list[Any] = []
    for group in groups:
        pending += group
        if any(_has_trainable(layer) for layer in pending):
            merged.append(pending)
            pending = []
    if pending:
        if merged:
            merged[-1] += pending
        else:
            merged.append(pending)
    return merged


def group_names(groups: list[list[Any]]) -> list[str]:
    """Plain names for the groups: the stem first, then the blocks above it."""
    return ["stem"] + [f"group {i}" for i in range(1, len(groups))]


# ---------------------------------------------------------------- what trains in a phase


def _open(layer: Any) -> None:
    # BatchNorm stays frozen: its statistics and scale are the pretrained ones (see build()).
    from tf_keras import layers as kl

    layer.trainable = not isinstance(layer, kl.BatchNormalization)


def apply_phase(base: keras.Model, phase: Phase) -> None:
    """Set which backbone layers train in this phase (the head always trains)."""
    if phase.base_trainable == "none":
        base.trainable = False
        return
    base.trainable = True
    if phase.base_trainable == "all":
        return
    net = network(base)
    if not hasattr(net, "layers"):
        return  # a TF Hub layer opens as a whole
    if phase.base_trainable == "groups":
        groups = conv_groups(net)
        for layer in net.layers:
            layer.trainable = False
        for group in groups[max(0, len(groups) - phase.top_groups):]:
            for layer in group:
                _open(layer)
        return
    weighted = [layer for layer in net.layers if layer.weights]
    for i, layer in enumerate(weighted):
        if i >= len(weighted) - phase.top_layers:
            _open(layer)
        else:
            layer.trainable = False


def count_trainable(model: keras.Model) -> int:
    """Number of trainable parameters right now."""
    import tf_keras as keras

    return int(sum(keras.backend.count_params(w) for w in model.trainable_weights))


# ---------------------------------------------------------------- compiling


def optimizer(name: str, learning_rate: Any) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name (each phase recompiles with its own); the rate may be a schedule."""
    import tf_keras as keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    make = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "rmsprop": keras.optimizers.RMSprop}[name]
    return make(learning_rate=learning_rate)


# warmup_cosine: the first 15 % of a phase's steps climb from a tenth of the rate to the rate, the rest decay
# to zero along a cosine (Goyal et al. 2017, Loshchilov & Hutter 2017): a high rate without the first steps'
# large, random gradients throwing a network from random weights off course (issue 27).
WARMUP_FRACTION = 0.15  # 3 of 20 epochs; at 0.1, one of 3 seeds on `shapes` lost 8 points (issue 27)


def learning_rate(config: RunConfig, phase: Phase, total_steps: int) -> Any:
    """The phase's learning rate: a number, or a cosine decay over the phase's steps (after a warm-up)."""
    import tf_keras as keras

    if config.schedule == "cosine" and total_steps > 0:
        return keras.optimizers.schedules.CosineDecay(phase.learning_rate, decay_steps=total_steps)
    if config.schedule == "warmup_cosine" and total_steps > 0:
        warm = int(total_steps * WARMUP_FRACTION)
        return keras.optimizers.schedules.CosineDecay(phase.learning_rate / 10, decay_steps=total_steps - warm,
                                                      warmup_target=phase.learning_rate, warmup_steps=warm)
    return phase.learning_rate


def compile_for(model: keras.Model, name: str, learning_rate: Any, label_smoothing: float = 0.0) -> None:
    """Compile with sparse labels and accuracy."""
    import tf_keras as keras

    loss = (layers.get("SmoothedSparseCrossentropy")(label_smoothing) if label_smoothing > 0
            else keras.losses.SparseCategoricalCrossentropy())
    model.compile(optimizer=optimizer(name, learning_rate), loss=loss, metrics=["accuracy"])


def phase_callbacks(config: RunConfig) -> list[keras.callbacks.Callback]:
    """Callbacks the schedule adds to every phase (reduce-on-plateau)."""
    import tf_keras as keras

    if config.schedule == "plateau":
        return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, config.patience // 2),
                                                  min_lr=1e-7)]
    return []


def use_precision(config: RunConfig) -> list[str]:
    """Set the global dtype policy for this run; a sentence when mixed precision was asked for but cannot be used."""
    import tensorflow as tf
    import tf_keras as keras

    wanted = config.mixed_precision
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if wanted and has_gpu else "float32")
    if wanted and not has_gpu:
        return ["Mixed precision needs a GPU and there is none, so training uses full precision (float32)."]
    return []


# ---------------------------------------------------------------- weights from an earlier run


def early_checkpoint_path(run_dir: Path) -> Path:
    """Where a run keeps its backbone's weights after the first epoch (weight_init starts from them)."""
    return run_dir / "checkpoints" / runs.EARLY_CHECKPOINT


def save_early_checkpoint(base: keras.Model, run_dir: Path) -> None:
    """Keep the backbone's weights after the first epoch, once per run."""
    path = early_checkpoint_path(run_dir)
    if not path.is_file():
        with atomic_target(path) as tmp:  # a kill mid-write leaves no half file that would be kept for good
            base.save_weights(str(tmp))


def source_run(config: RunConfig, ws: Path) -> tuple[Path, RunConfig]:
    """The earlier run a domain_weights or weight_init config starts from, checked against the config."""
    if not config.source_run:
        raise ConfigError("This strategy starts from an earlier run; choose one (source_run).")
    run_dir = runs.run_path(config.source_run, ws)
    source = runs.load_config(run_dir)
    if source.backbone != config.backbone:
        raise ConfigError(
            f"Run {config.source_run} trained {backbones.get(source.backbone).label}, so its weights fit only that "
            f"backbone; set backbone to '{source.backbone}'."
        )
    return run_dir, source


def init_from_source(base: keras.Model, config: RunConfig, ws: Path) -> list[str]:
    """Load an earlier run's backbone weights into base, as the strategy asks; one sentence saying so."""
    how = strategies.get(config.strategy).source
    if how is None:
        return []
    run_dir, _ = source_run(config, ws)
    if how == "early":
        path = early_checkpoint_path(run_dir)
        if not path.is_file():
            raise RunStateError(
                f"Run {config.source_run} has no early checkpoint (it was trained before TransferLab kept one); "
                "choose another run, or use domain weights instead."
            )
        base.load_weights(str(path))
        return [f"The backbone starts from run {config.source_run}'s weights after its first epoch."]
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise RunStateError(f"Run {config.source_run} has no trained model yet; choose a finished run.")
    source = load(model_path)
    base.set_weights(source.get_layer(base.name).get_weights())
    return [f"The backbone starts from run {config.source_run}'s trained backbone; the classifier head is new."]


# ---------------------------------------------------------------- saving and loading


def load(path: Path) -> Any:
    """Load a model.keras written by the trainer (safe mode: no arbitrary code)."""
    import tf_keras as keras

    custom: dict[str, Any] = {**layers.custom_objects(), **texts.keras_classes()}
    with contextlib.suppress(ImportError):
        import tensorflow_hub as hub

        custom["KerasLayer"] = hub.KerasLayer
    return keras.models.load_model(path, compile=False, safe_mode=True, custom_objects=custom)


def save_checkpoint(model: keras.Model, prefix: Path) -> None:
    """Save the weights, matched by object structure (not by order, which changes with trainability).

    Written under a new name, then published by the store's atomic pointer: a process killed (or a disk
    that fills up) while writing leaves the previous checkpoint whole.
    """
    import tensorflow as tf

    files = runs.new_checkpoint_files(prefix)
    try:
        tf.train.Checkpoint(model=model).write(str(files))
    except BaseException:
        for leftover in prefix.parent.glob(f"{files.name}*"):  # a half-written new version (e.g. the disk filled)
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        raise
    settings.fault("checkpoint")  # the new files are complete, the pointer still names the old ones
    runs.publish_checkpoint(prefix, files)


def load_checkpoint(model: keras.Model, prefix: Path) -> None:
    """Restore weights saved by save_checkpoint (compile state and optimizer are not part of it)."""
    import tensorflow as tf

    files = runs.checkpoint_files(prefix)
    if files is None:
        raise RunStateError(f"The checkpoint {prefix} does not exist.")
    tf.train.Checkpoint(model=model).read(str(files)).expect_partial()


def checkpoint_exists(prefix: Path) -> bool:
    """True when save_checkpoint wrote this prefix."""
    return runs.checkpoint_files(prefix) is not None


# ---------------------------------------------------------------- the page's summary


def summary(config: RunConfig, num_classes: int) -> dict[str, Any]:
    """Total and trainable parameters per phase, and the backbone's groups with their layers.

    Built with random weights (nothing is downloaded): the counts do not depend on the weights.
    """
    # No clear_session() here: it is process-global and would break models other pages hold.
    model, base = build(replace(config, weights="none"), num_classes)
    phases = []
    for phase in strategies.get(config.strategy).phases(config):
        apply_phase(base, phase)
        phases.append({"name": phase.name, "label": phase.label, "trainable": count_trainable(model)})
    groups = conv_groups(network(base))
    head = sum(layer.count_params() for layer in model.layers[model.layers.index(model.get_layer("pool")):])
    return {
        "total": int(model.count_params()),
        "head": int(head),
        "phases": phases,
        "groups": [
            {"name": name, "params": int(sum(layer.count_params() for layer in group)),
             "layers": [{"name": layer.name, "type": type(layer).__name__, "params": int(layer.count_params())}
                        for layer in group]}
            for name, group in zip(group_names(groups), groups)
        ],
    }


# ---------------------------------------------------------------- what the pretrained model sees


def pretrained_guesses(backbone_id: str, images: list[bytes], top: int = 3) -> list[list[dict[str, Any]]]:
    """The backbone's own ImageNet classifier on a few images: its top guesses (label, probability) for each."""
    from PIL import Image
    from tf_keras.applications.imagenet_utils import decode_predictions

    spec = backbones.get(backbone_id)
    weights_file = networks.fetch_classifier(spec)
    size = backbones.classifier_size(spec)
    if spec.keras_loads_weights:
        net = networks.make_network(spec, size, include_top=True, weights="imagenet")
    else:
        net = networks.make_network(spec, size, include_top=True)
        net.load_weights(str(weights_file))
    batch = []
    for data in images:
        with Image.open(io.BytesIO(data)) as im:
            batch.append(np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float32))
    x = layers.preprocessing_layer(spec.preprocessing)(np.stack(batch))
    probs = net.predict(x, verbose=0)
    return [[{"label": name.replace("_", " "), "probability": float(p)} for _, name, p in row]
            for row in decode_predictions(probs, top=top)]


