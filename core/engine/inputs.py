"""The model side of each kind of data: the model's raw input (shape, dtype, name), its augmentation
inside the model, and how one handed-in file becomes one input for a prediction.

`modeling.build`, the export's input signature, prediction and serving ask the kind of the run's
backbone (a config pairs it with the dataset's kind, `core.data.kinds.check_backbone`) instead of
assuming images. How a prediction is explained is `core.engine.interpret.EXPLAINERS`, keyed by the
kind's `explain` (core.spec.kinds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from core.data import images
from core.data import sounds as data_sounds
from core.data.limits import ImportLimits
from core.engine import augment, sounds, texts
from core.errors import ConfigError
from core.spec import backbones
from core.spec import kinds as spec_kinds
from core.spec.config import RunConfig

if TYPE_CHECKING:
    import tf_keras as keras


@dataclass(frozen=True)
class InputKind:
    """The functions that make one kind of data a model input; every field is required."""

    id: str  # a kind id of core.spec.kinds
    # The run's input size -> (shape of one item, without the batch axis; dtype; the input's name).
    signature: Callable[[int], tuple[tuple[int | None, ...], str, str]]
    # The run's config -> random changes as a Keras layer named "augmentation", active only while
    # training, or None (no augmentation chosen, or none for this kind).
    augmentation: Callable[[RunConfig], Any]
    # (a file's bytes, the input size, import limits or None for the defaults) -> one input as a
    # numpy array of `signature`'s shape; a bad file raises DatasetError with a sentence.
    decode: Callable[[bytes, int, ImportLimits | None], np.ndarray]
    # The values a raw input may hold (serving refuses others with a sentence), and the input in words.
    value_range: tuple[float, float] = (0.0, 255.0)
    words: str = "RGB pixels (0-255)"
    # Layers a full-integer TFLite file keeps in float, input included, because their values do not survive
    # 8 bits (sounds: the log-mel front end, whose power spectrum spans ten orders of magnitude).
    float_layers: tuple[str, ...] = ()
    # (a file's bytes, the input size, import limits or None) -> the model inputs (n, *shape) whose answers are
    # averaged into the file's prediction (sounds: the one-second windows of a longer clip); None: `decode`'s one.
    pieces: Callable[[bytes, int, ImportLimits | None], np.ndarray] | None = None


INPUT_KINDS: dict[str, InputKind] = {}


def register(kind: InputKind) -> InputKind:
    """Add the model side of a kind (its core.spec.kinds entry must exist); returns it."""
    spec_kinds.get(kind.id)
    if kind.id in INPUT_KINDS:
        raise ConfigError(f"The model side of the kind '{kind.id}' is registered already.")
    INPUT_KINDS[kind.id] = kind
    return kind


def get(kind_id: str) -> InputKind:
    """The model side of a kind, by id; a sentence when no module builds models for it."""
    words = spec_kinds.get(kind_id)
    if kind_id not in INPUT_KINDS:
        raise ConfigError(f"This version of the app cannot build models for {words.items} yet.")
    return INPUT_KINDS[kind_id]


def of_config(config: RunConfig) -> InputKind:
    """The model side of a run's kind of data: its backbone's kind."""
    return get(backbones.get(config.backbone).kind)


def keras_input(config: RunConfig) -> keras.KerasTensor:
    """The model's raw input for this run (images: (S, S, 3) float32 0-255 pixels, named "image")."""
    import tf_keras as keras

    shape, dtype, name = of_config(config).signature(config.image_size)
    return keras.Input(shape, dtype=dtype, name=name)


def tensor_spec(config: RunConfig) -> Any:
    """The exported model's input signature: one batch of raw inputs, as `keras_input` takes them."""
    import tensorflow as tf

    shape, dtype, name = of_config(config).signature(config.image_size)
    return tf.TensorSpec([None, *shape], dtype, name=name)


def decode(config: RunConfig, data: bytes, limits: ImportLimits | None = None) -> np.ndarray:
    """One handed-in file's bytes as one model input of this run (images: resized 0-255 pixels)."""
    return of_config(config).decode(data, config.image_size, limits)


def pieces(config: RunConfig, data: bytes, limits: ImportLimits | None = None) -> np.ndarray:
    """One handed-in file as the batch of model inputs whose answers are averaged into its prediction: (n, *shape)
    (sounds: the one-second windows of a longer clip; other kinds: `decode`'s one input)."""
    kind = of_config(config)
    if kind.pieces is None:
        return kind.decode(data, config.image_size, limits)[None]
    return kind.pieces(data, config.image_size, limits)


def blank(config: RunConfig) -> np.ndarray:
    """A batch of one empty input of this run (zeros; empty strings for text), to run a model once."""
    shape, dtype, _ = of_config(config).signature(config.image_size)
    shape = tuple(1 if n is None else n for n in shape)
    return np.full((1, *shape), "", dtype=object) if dtype == "string" else np.zeros((1, *shape), dtype)


IMAGES = register(InputKind(
    id="image",
    signature=lambda size: ((size, size, 3), "float32", "image"),
    augmentation=lambda config: augment.augmentation(config.augment, config.seed),
    decode=lambda data, size, limits: images.load_image_array(data, size, limits),
))

SOUNDS = register(InputKind(
    id="audio",
    signature=lambda size: ((data_sounds.CLIP_SAMPLES,), "float32", "waveform"),
    augmentation=lambda config: sounds.augmentation(config.augment, config.seed),
    decode=data_sounds.load_clip,
    pieces=data_sounds.clip_windows,
    value_range=(-1.0, 1.0),
    words=f"samples of a {data_sounds.SAMPLE_RATE // 1000} kHz mono waveform (-1 to 1)",
    float_layers=("log_mel",),
))

TEXTS = register(InputKind(
    id="text", signature=texts.signature, augmentation=lambda config: None, decode=texts.decode,
))
