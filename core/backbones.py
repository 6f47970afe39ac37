"""The backbone registry: one BackboneSpec per pretrained network, as data.

Importing this module does not import TensorFlow; only build_base() does. ImageNet weights come
through Keras's own downloader and cache (~/.keras/models): tf_keras ignores KERAS_HOME there.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import WeightsUnavailable


@dataclass(frozen=True)
class WeightsFile:
    """One weights file exactly as Keras names and fetches it."""

    name: str
    url: str
    file_hash: str | None = None


@dataclass(frozen=True)
class BackboneSpec:
    """What the app needs to know about a backbone, without building it."""

    id: str
    label: str
    family: str
    # Keras application constructor as (module, attribute), plus its extra keyword arguments.
    constructor: tuple[str, str]
    kwargs: dict[str, Any] = field(default_factory=dict)
    # How raw 0-255 RGB pixels become the network's input: a key of PREPROCESSING.
    preprocessing: str = "none"
    weights_options: tuple[str, ...] = ("imagenet", "none")
    default_size: int = 224
    min_size: int = 32
    max_size: int = 600
    # ImageNet weights were trained at these sizes; other sizes reuse the closest file's filters.
    weight_sizes: tuple[int, ...] = (224,)
    params_m: float = 0.0  # published parameter count, millions, classifier included
    size_mb: float = 0.0  # published ImageNet weights size
    top1: float | None = None  # published ImageNet top-1 accuracy, %
    weights_files: Callable[[int], list[WeightsFile]] = lambda size: []

    def weights_candidates(self, image_size: int) -> list[WeightsFile]:
        """Weights files usable at this size, the best match first."""
        sizes = sorted(self.weight_sizes, key=lambda s: (s != image_size, abs(s - image_size)))
        out: list[WeightsFile] = []
        for s in sizes:
            out += [f for f in self.weights_files(s) if f not in out]
        return out


_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _mobilenet_v1_files(alpha: float) -> Callable[[int], list[WeightsFile]]:
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
    return lambda s: [WeightsFile(f"mobilenet_{text}_{s}_tf_no_top.h5", f"{_KA}mobilenet/mobilenet_{text}_{s}_tf_no_top.h5")]


def _mobilenet_v2_files(alpha: float) -> Callable[[int], list[WeightsFile]]:
    def files(s: int) -> list[WeightsFile]:
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{s}_no_top.h5"
        return [WeightsFile(name, f"{_KA}mobilenet_v2/{name}")]

    return files


def _mobilenet_v3_files(kind: str, file_hash: str) -> Callable[[int], list[WeightsFile]]:
    name = f"weights_mobilenet_v3_{kind}_224_1.0_float_no_top_v2.h5"
    return lambda s: [WeightsFile(name, f"{_KA}mobilenet_v3/{name}", file_hash)]


def _v1(alpha: float, params: float, top1: float) -> BackboneSpec:
    return BackboneSpec(
        id=f"mobilenet_v1_{alpha}",
        label=f"MobileNet V1 (width {alpha})",
        family="mobilenet_v1",
        constructor=("tf_keras.applications", "MobileNet"),
        kwargs={"alpha": alpha},
        preprocessing="minus_one_to_one",
        default_size=224,
        weight_sizes=(128, 160, 192, 224),
        params_m=params,
        size_mb=round(params * 4, 1),
        top1=top1,
        weights_files=_mobilenet_v1_files(alpha),
    )


def _v2(alpha: float, params: float, top1: float) -> BackboneSpec:
    return BackboneSpec(
        id=f"mobilenet_v2_{alpha}",
        label=f"MobileNet V2 (width {alpha})",
        family="mobilenet_v2",
        constructor=("tf_keras.applications", "MobileNetV2"),
        kwargs={"alpha": alpha},
        preprocessing="minus_one_to_one",
        default_size=224,
        weight_sizes=(96, 128, 160, 192, 224) if alpha <= 1.0 else (224,),
        params_m=params,
        size_mb=round(params * 4, 1),
        top1=top1,
        weights_files=_mobilenet_v2_files(alpha),
    )


_SPECS: tuple[BackboneSpec, ...] = (
    # Published figures: the Keras application docstrings (MobileNet tables at 224 px).
    _v1(0.25, 0.47, 50.6),
    _v1(0.5, 1.34, 63.7),
    _v1(0.75, 2.6, 68.4),
    _v1(1.0, 4.25, 70.6),
    _v2(0.35, 1.66, 60.3),
    _v2(0.5, 1.95, 65.4),
    _v2(0.75, 2.61, 69.8),
    _v2(1.0, 3.47, 71.8),
    _v2(1.3, 5.34, 74.4),
    _v2(1.4, 6.06, 75.0),
    BackboneSpec(
        id="mobilenet_v3_small",
        label="MobileNet V3 Small",
        family="mobilenet_v3",
        constructor=("tf_keras.applications", "MobileNetV3Small"),
        kwargs={"include_preprocessing": True},
        params_m=2.55,
        size_mb=10.0,
        top1=68.1,
        weights_files=_mobilenet_v3_files("small", "d3e8ec802a04aa4fc771ee12a9a9b836"),
    ),
    BackboneSpec(
        id="mobilenet_v3_large",
        label="MobileNet V3 Large",
        family="mobilenet_v3",
        constructor=("tf_keras.applications", "MobileNetV3Large"),
        kwargs={"include_preprocessing": True},
        params_m=5.51,
        size_mb=21.0,
        top1=75.6,
        weights_files=_mobilenet_v3_files("large", "07fb09a5933dd0c8eaafa16978110389"),
    ),
    BackboneSpec(
        id="efficientnet_b0",
        label="EfficientNet B0",
        family="efficientnet",
        constructor=("tf_keras.applications", "EfficientNetB0"),
        params_m=5.3,
        size_mb=29.0,
        top1=77.1,
        weights_files=lambda s: [
            WeightsFile(
                "efficientnetb0_notop.h5",
                "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
                "50bc09e76180e00e4465e1a485ddc09d",
            )
        ],
    ),
    BackboneSpec(
        id="resnet50",
        label="ResNet-50",
        family="resnet",
        constructor=("tf_keras.applications", "ResNet50"),
        preprocessing="caffe",
        params_m=25.6,
        size_mb=98.0,
        top1=74.9,
        weights_files=lambda s: [
            WeightsFile(
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                f"{_KA}resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "4d473c1dd8becc155b73f8504c6f6626",
            )
        ],
    ),
    # Not pretrained: the network the app falls back to when no ImageNet weights are at hand,
    # small enough to train from scratch on a CPU in a minute or two.
    BackboneSpec(
        id="small_cnn",
        label="Small CNN (no pretraining)",
        family="small_cnn",
        constructor=("core.backbones", "small_cnn"),
        preprocessing="zero_to_one",
        weights_options=("none",),
        default_size=64,
        max_size=256,
        params_m=0.39,
        size_mb=1.6,
    ),
)

BACKBONES: dict[str, BackboneSpec] = {s.id: s for s in _SPECS}


def get(backbone_id: str) -> BackboneSpec:
    """The spec for a (validated) backbone id."""
    return BACKBONES[backbone_id]


def ids() -> tuple[str, ...]:
    """All backbone ids, in display order."""
    return tuple(BACKBONES)


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: ~/.keras/models, or /tmp/.keras/models if home is read-only."""
    base = Path(os.path.expanduser("~")) / ".keras"
    if not os.access(base if base.exists() else base.parent, os.W_OK):
        base = Path("/tmp") / ".keras"
    return base / "models"


def cached_weights(spec: BackboneSpec, image_size: int) -> Path | None:
    """The cached ImageNet weights file for this backbone and size, if one is on disk."""
    for wf in spec.weights_candidates(image_size):
        path = keras_models_dir() / wf.name
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def has_weights(spec: BackboneSpec, weights: str, image_size: int) -> bool:
    """True when building with these weights needs no download."""
    return weights == "none" or cached_weights(spec, image_size) is not None


def fetch_weights(spec: BackboneSpec, image_size: int) -> Path:
    """The ImageNet weights file, from the Keras cache or downloaded into it by Keras."""
    cached = cached_weights(spec, image_size)
    if cached is not None:
        return cached
    from tf_keras.utils import get_file

    candidates = spec.weights_candidates(image_size)
    offline = os.environ.get("TL_OFFLINE") == "1"
    for wf in [] if offline else candidates:
        try:
            return Path(get_file(wf.name, wf.url, cache_subdir="models", file_hash=wf.file_hash))
        except Exception:  # noqa: BLE001 - any download failure means: try the next file, then explain
            continue
    first = candidates[0].name if candidates else "(none)"
    raise WeightsUnavailable(
        f"The ImageNet weights for {spec.label} ({first}) are not in {keras_models_dir()} and could not be "
        f"downloaded; connect to the internet once, or copy that file into {keras_models_dir()}."
    )


PREPROCESSING = ("none", "minus_one_to_one", "zero_to_one", "caffe")


def build_base(spec: BackboneSpec, image_size: int, weights: str) -> Any:
    """The backbone as a Keras model from raw 0-255 RGB pixels to its last feature map."""
    import tf_keras as keras

    from core import layers as tl_layers

    shape = (image_size, image_size, 3)
    module, attr = spec.constructor
    make = getattr(importlib.import_module(module), attr)
    net = make(input_shape=shape, include_top=False, weights=None, **spec.kwargs)
    if weights == "imagenet":
        # Keras would fetch the same file; loading it ourselves lets sizes without a file of
        # their own reuse the nearest one (convolution filters do not depend on image size).
        net.load_weights(str(fetch_weights(spec, image_size)))
    inputs = keras.Input(shape, name="pixels")
    x = tl_layers.preprocessing_layer(spec.preprocessing)(inputs)
    return keras.Model(inputs, net(x), name=f"base_{spec.id.replace('.', '_')}")


def small_cnn(input_shape: tuple[int, int, int], include_top: bool = False, weights: None = None) -> Any:
    """A four-block CNN for training from scratch (the offline fallback), Keras-application style."""
    import tf_keras as keras
    from tf_keras import layers

    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i + 1}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i + 1}_bn")(x)
        x = layers.Activation("relu", name=f"block{i + 1}_relu")(x)
        x = layers.MaxPooling2D(name=f"block{i + 1}_pool")(x)
    return keras.Model(inputs, x, name="small_cnn")


def best_available(image_size: int) -> BackboneSpec | None:
    """The most accurate pretrained backbone whose ImageNet weights are already cached."""
    ready = [
        s
        for s in BACKBONES.values()
        if "imagenet" in s.weights_options and s.min_size <= image_size <= s.max_size and cached_weights(s, image_size)
    ]
    return max(ready, key=lambda s: s.top1 or 0.0, default=None)
