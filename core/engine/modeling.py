"""Build the classifier (augmentation -> backbone -> head), switch what trains, load saved models.

The backbone's convolutional groups, used by gradual unfreezing, are found from its graph
(conv_groups); so are the measured figures of the backbone registry (write_facts).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from core import backbones, runs, strategies
from core import layers as tl_layers  # noqa: F401 - registers custom layers before any load
from core.config import AugmentConfig, RunConfig
from core.errors import ConfigError, RunStateError
from core.strategies import Phase


def augmentation(aug: AugmentConfig, seed: int) -> keras.Sequential | None:
    """Random image changes, active only while training (Keras preprocessing layers)."""
    steps = []
    if aug.flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if aug.rotate:
        steps.append(layers.RandomRotation(0.1, seed=seed))
    if aug.zoom:
        steps.append(layers.RandomZoom(0.15, seed=seed))
    if aug.translate:
        steps.append(layers.RandomTranslation(0.1, 0.1, seed=seed))
    if aug.contrast:
        steps.append(layers.RandomContrast(0.2, seed=seed))
    if aug.brightness:
        steps.append(layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed))
    return keras.Sequential(steps, name="augmentation") if steps else None


def pooling_layer(pooling: str, feature_rank: int) -> keras.layers.Layer:
    """The head's first layer, named "pool": it turns the backbone's feature map into one vector."""
    if feature_rank == 2:
        return layers.Identity(name="pool")  # a TF Hub feature vector is pooled already
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="pool")
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="pool")
    if pooling == "maxpool_flatten":
        # Keeps a coarse layout of where things are (2x2 windows), unlike global pooling.
        return keras.Sequential([layers.MaxPooling2D(2, padding="same"), layers.Flatten()], name="pool")
    return layers.Flatten(name="pool")


def build(config: RunConfig, num_classes: int) -> tuple[keras.Model, keras.Model]:
    """The whole classifier for raw 0-255 RGB input, and its backbone sub-model."""
    spec = backbones.get(config.backbone)
    size = config.image_size
    base = backbones.build_base(spec, size, config.weights)
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    aug = augmentation(config.augment, config.seed)
    if aug is not None:
        x = aug(x)
    # Pretrained BatchNorm statistics must stay in inference mode, even when layers are later
    # unfrozen for fine-tuning, or the first updates wreck what was learned (Keras guide).
    # A network trained from scratch needs BatchNorm to learn its statistics.
    x = base(x, training=False) if config.weights != "none" else base(x)
    head = config.head
    x = pooling_layer(head.pooling, len(base.output_shape))(x)
    reg = keras.regularizers.l2(head.l2) if head.l2 > 0 else None
    if head.hidden_units:
        x = layers.Dropout(head.dropout, name="hidden_dropout")(x)
        x = layers.Dense(head.hidden_units, activation="relu", kernel_regularizer=reg, name="hidden")(x)
    x = layers.Dropout(head.dropout, name="dropout")(x)
    # float32 scores even under mixed precision, where float16 softmax loses small probabilities.
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg, dtype="float32",
                           name="predictions")(x)
    return keras.Model(inputs, outputs, name="transferlab_classifier"), base


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
    kept = [i for i, layer in enumerate(net_layers) if not isinstance(layer, layers.InputLayer)]
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
    layer.trainable = not isinstance(layer, layers.BatchNormalization)


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
    return int(sum(keras.backend.count_params(w) for w in model.trainable_weights))


# ---------------------------------------------------------------- compiling


@keras.saving.register_keras_serializable(package="transferlab")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Keras has it only for one-hot labels)."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def optimizer(name: str, learning_rate: Any) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name (each phase recompiles with its own); the rate may be a schedule."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    make = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "rmsprop": keras.optimizers.RMSprop}[name]
    return make(learning_rate=learning_rate)


def learning_rate(config: RunConfig, phase: Phase, total_steps: int) -> Any:
    """The phase's learning rate: a number, or a cosine decay over the phase's steps."""
    if config.schedule == "cosine" and total_steps > 0:
        return keras.optimizers.schedules.CosineDecay(phase.learning_rate, decay_steps=total_steps)
    return phase.learning_rate


def compile_for(model: keras.Model, name: str, learning_rate: Any, label_smoothing: float = 0.0) -> None:
    """Compile with sparse labels and accuracy."""
    loss = (SmoothedSparseCrossentropy(label_smoothing) if label_smoothing > 0
            else keras.losses.SparseCategoricalCrossentropy())
    model.compile(optimizer=optimizer(name, learning_rate), loss=loss, metrics=["accuracy"])


def phase_callbacks(config: RunConfig) -> list[keras.callbacks.Callback]:
    """Callbacks the schedule adds to every phase (reduce-on-plateau)."""
    if config.schedule == "plateau":
        return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, config.patience // 2),
                                                  min_lr=1e-7)]
    return []


def use_precision(config: RunConfig) -> list[str]:
    """Set the global dtype policy for this run; a sentence when mixed precision was asked for but cannot be used."""
    wanted = config.mixed_precision
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if wanted and has_gpu else "float32")
    if wanted and not has_gpu:
        return ["Mixed precision needs a GPU and there is none, so training uses full precision (float32)."]
    return []


# ---------------------------------------------------------------- weights from an earlier run


def early_checkpoint_path(run_dir: Path) -> Path:
    """Where a run keeps its backbone's weights after the first epoch (weight_init starts from them)."""
    return run_dir / "checkpoints" / backbones.EARLY_CHECKPOINT


def save_early_checkpoint(base: keras.Model, run_dir: Path) -> None:
    """Keep the backbone's weights after the first epoch, once per run."""
    path = early_checkpoint_path(run_dir)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        base.save_weights(str(path))


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
    custom: dict[str, Any] = {}
    with contextlib.suppress(ImportError):
        import tensorflow_hub as hub

        custom["KerasLayer"] = hub.KerasLayer
    return keras.models.load_model(path, compile=False, safe_mode=True, custom_objects=custom)


def save_checkpoint(model: keras.Model, prefix: Path) -> None:
    """Save the weights, matched by object structure (not by order, which changes with trainability)."""
    tf.train.Checkpoint(model=model).write(str(prefix))


def load_checkpoint(model: keras.Model, prefix: Path) -> None:
    """Restore weights saved by save_checkpoint (compile state and optimizer are not part of it)."""
    tf.train.Checkpoint(model=model).read(str(prefix)).expect_partial()


def checkpoint_exists(prefix: Path) -> bool:
    """True when save_checkpoint wrote this prefix."""
    return Path(f"{prefix}.index").is_file()


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
    weights_file = backbones.fetch_classifier(spec)
    size = backbones.classifier_size(spec)
    if spec.keras_loads_weights:
        net = backbones.make_network(spec, size, include_top=True, weights="imagenet")
    else:
        net = backbones.make_network(spec, size, include_top=True)
        net.load_weights(str(weights_file))
    batch = []
    for data in images:
        with Image.open(io.BytesIO(data)) as im:
            batch.append(np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float32))
    x = backbones.preprocessing_layer(spec.preprocessing)(np.stack(batch))
    probs = net.predict(x, verbose=0)
    return [[{"label": name.replace("_", " "), "probability": float(p)} for _, name, p in row]
            for row in decode_predictions(probs, top=top)]


# ---------------------------------------------------------------- measured figures of the registry


def count_flops(model: Any) -> int:
    """Floating-point operations for one image: two per multiply-add of every kernel at every output position."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            macs += count_flops(layer) // 2
            continue
        shape = layer.output_shape
        positions = math.prod(shape[1:-1]) if isinstance(shape, tuple) and len(shape) > 2 else 1
        for w in layer.weights:
            if "kernel" in w.name:
                macs += positions * math.prod(w.shape)
    return 2 * macs


def measure(spec: backbones.BackboneSpec) -> dict[str, Any]:
    """Build one backbone at its default size (random weights) and measure what the registry shows."""
    size = spec.default_size
    keras.backend.clear_session()
    full = backbones.make_network(spec, size, include_top=True)
    params = int(full.count_params())
    del full
    keras.backend.clear_session()
    net = backbones.make_network(spec, size)
    return {
        "params": params,
        "base_params": int(net.count_params()),
        "gflops": round(count_flops(net) / 1e9, 3),
        "out_shape": list(net.output_shape[1:]),
        "groups": group_facts(conv_groups(net)),
    }


def group_facts(groups: list[list[Any]]) -> list[dict[str, Any]]:
    """What the registry stores of each group: its name, first and last layer, weighted layers, parameters."""
    return [
        {"name": name, "first": group[0].name, "last": group[-1].name,
         "layers": sum(1 for layer in group if layer.weights),
         "params": int(sum(layer.count_params() for layer in group))}
        for name, group in zip(group_names(groups), groups)
    ]


def write_facts(ids: list[str] | None = None) -> Path:
    """Measure backbones (all by default) into core/backbone_facts.json; keeps the others' entries. Slow."""
    path = Path(backbones.__file__).with_name("backbone_facts.json")
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for backbone_id in ids or backbones.ids():
        data[backbone_id] = measure(backbones.get(backbone_id))
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    backbones.facts.cache_clear()
    return path


def measure_speed(ids: list[str], batch: int = 32, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Milliseconds per image of each backbone's forward pass at its default size on this machine (random weights),
    with its GFLOPs (calibrate_speed uses it)."""
    import time

    out = {}
    for backbone_id in ids:
        spec = backbones.get(backbone_id)
        keras.backend.clear_session()
        base = backbones.build_base(spec, spec.default_size, "none")
        images = np.random.default_rng(0).uniform(0, 255, (batch, spec.default_size, spec.default_size, 3))
        run = tf.function(lambda x: base(x, training=False))
        run(tf.constant(images, tf.float32))  # trace once
        started = time.perf_counter()
        for _ in range(repeats):
            run(tf.constant(images, tf.float32)).numpy()
        ms = (time.perf_counter() - started) * 1000 / (repeats * batch)
        out[backbone_id] = {"ms_per_image": round(ms, 2), "gflops": spec.gflops,
                            "ms_per_gflop": round(ms / spec.gflops, 2) if spec.gflops else None}
    return out


def calibrate_speed(batch: int = 8, repeats: int = 2) -> dict[str, float]:
    """Time one backbone per family on this machine and store every backbone's estimated ms per image in the facts.

    Milliseconds per GFLOP differ a lot between families (depthwise and 7x7 convolutions run far
    below a CPU's peak, dense 3x3 ones near it), so each family gets its own factor. Slow.
    """
    families: dict[str, list[backbones.BackboneSpec]] = {}
    for spec in backbones.BACKBONES.values():
        families.setdefault(spec.family, []).append(spec)
    factors = {}
    for family, specs in families.items():
        # The smallest member that is not dominated by per-call overhead.
        usable = [s for s in specs if s.gflops >= 0.3] or specs
        chosen = min(usable, key=lambda s: s.gflops)
        factors[family] = measure_speed([chosen.id], batch, repeats)[chosen.id]["ms_per_gflop"]
    path = Path(backbones.__file__).with_name("backbone_facts.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    for spec in backbones.BACKBONES.values():
        data[spec.id]["ms_per_image"] = round(factors[spec.family] * data[spec.id]["gflops"], 1)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    backbones.facts.cache_clear()
    return factors


def refresh_groups(ids: list[str] | None = None) -> None:
    """Re-measure only the layer groups in the facts (one build per backbone, no classifier): after changing conv_groups."""
    path = Path(backbones.__file__).with_name("backbone_facts.json")
    for backbone_id in ids or backbones.ids():
        spec = backbones.get(backbone_id)
        keras.backend.clear_session()
        groups = group_facts(conv_groups(backbones.make_network(spec, spec.default_size)))
        data = json.loads(path.read_text(encoding="utf-8"))
        data[backbone_id]["groups"] = groups
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    backbones.facts.cache_clear()
