"""Build the classifier (augmentation -> backbone -> head), switch what trains, load saved models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tf_keras as keras
from tf_keras import layers

from core import backbones
from core import layers as tl_layers  # noqa: F401 - registers custom layers before any load
from core.config import AugmentConfig, RunConfig
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
    if head.pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    elif head.pooling == "max":
        x = layers.GlobalMaxPooling2D(name="pool")(x)
    else:
        x = layers.Flatten(name="pool")(x)
    reg = keras.regularizers.l2(head.l2) if head.l2 > 0 else None
    if head.hidden_units:
        x = layers.Dropout(head.dropout, name="hidden_dropout")(x)
        x = layers.Dense(head.hidden_units, activation="relu", kernel_regularizer=reg, name="hidden")(x)
    x = layers.Dropout(head.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg, name="predictions")(x)
    return keras.Model(inputs, outputs, name="transferlab_classifier"), base


def apply_phase(base: keras.Model, phase: Phase) -> None:
    """Set which backbone layers train in this phase (the head always trains)."""
    if phase.base_trainable == "none":
        base.trainable = False
        return
    base.trainable = True
    if phase.base_trainable == "all":
        return
    net = base.layers[-1]  # the Keras application inside the preprocessing wrapper
    weighted = [layer for layer in net.layers if layer.weights]
    for i, layer in enumerate(weighted):
        top = i >= len(weighted) - phase.top_layers
        # BatchNorm stays frozen: its statistics are the pretrained ones (see build()).
        layer.trainable = top and not isinstance(layer, layers.BatchNormalization)


def optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name (each phase recompiles with its own)."""
    make = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}[name]
    if name == "sgd":
        return make(learning_rate=learning_rate, momentum=0.9)
    return make(learning_rate=learning_rate)


def compile_for(model: keras.Model, name: str, learning_rate: float) -> None:
    """Compile with sparse labels and accuracy."""
    model.compile(
        optimizer=optimizer(name, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def count_trainable(model: keras.Model) -> int:
    """Number of trainable parameters right now."""
    return int(sum(keras.backend.count_params(w) for w in model.trainable_weights))


def load(path: Path) -> Any:
    """Load a model.keras written by the trainer (safe mode: no arbitrary code)."""
    return keras.models.load_model(path, compile=False, safe_mode=True)


def save_checkpoint(model: keras.Model, prefix: Path) -> None:
    """Save the weights, matched by object structure (not by order, which changes with trainability)."""
    import tensorflow as tf

    tf.train.Checkpoint(model=model).write(str(prefix))


def load_checkpoint(model: keras.Model, prefix: Path) -> None:
    """Restore weights saved by save_checkpoint (compile state and optimizer are not part of it)."""
    import tensorflow as tf

    tf.train.Checkpoint(model=model).read(str(prefix)).expect_partial()


def checkpoint_exists(prefix: Path) -> bool:
    """True when save_checkpoint wrote this prefix."""
    return Path(f"{prefix}.index").is_file()
