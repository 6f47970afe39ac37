"""Backbone networks as Keras models: weights fetched through Keras's downloader (or TF Hub), the bare
application built, and wrapped with its preprocessing so it takes raw 0-255 RGB pixels.

The registry (core.spec.backbones) says what each backbone is; this module makes one. TensorFlow is
imported inside the functions that need it.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

from core import settings
from core.data import remote
from core.data.limits import ProgressFn
from core.engine import inputs, layers, sounds
from core.errors import AddressRefused, WeightsUnavailable
from core.spec import backbones
from core.spec.backbones import BackboneSpec, WeightsFile

log = logging.getLogger("transferlab.networks")

# ---------------------------------------------------------------- weights

# What a visitor of a shared server can do about a file missing on the server (they cannot copy files there).
ASK_OPERATOR = "ask whoever runs this server"


def fetch_hub(spec: BackboneSpec, cache: Path | None = None) -> Path:
    """The local folder of a TF Hub model: the SavedModel folder given, or downloaded into the hub cache (`cache`,
    else where TFHUB_CACHE_DIR points)."""
    handle = spec.hub_handle
    local = backbones.hub_local(handle, cache)
    if local is not None:
        return local
    if not handle.startswith(("https://", "http://")):
        raise WeightsUnavailable(
            f"The folder {handle} does not hold a TensorFlow SavedModel (no saved_model.pb); "
            "choose the folder that contains saved_model.pb."
        )
    if settings.hosted():
        return _fetch_hub_checked(handle, cache)
    if settings.offline():
        raise WeightsUnavailable(
            f"This computer is offline, so the TF Hub model {handle} cannot be downloaded; use a SavedModel "
            "folder on this computer instead, or a Keras backbone."
        )
    import tensorflow_hub as hub

    if cache is not None:  # one person's computer: TF Hub's downloader reads its folder from the environment
        os.environ["TFHUB_CACHE_DIR"] = str(cache)
    try:
        return Path(hub.resolve(handle))
    except Exception:  # noqa: BLE001 - any download failure gets the same plain sentence
        raise WeightsUnavailable(
            f"The TF Hub model {handle} could not be downloaded (no internet, or no such model); check the "
            "address, or use a SavedModel folder on this computer."
        ) from None


def _fetch_hub_checked(handle: str, cache: Path | None = None) -> Path:
    """A visitor's TF Hub address on a shared server: checked (core.data.remote) before any request, every
    redirect checked, the download capped; unpacked into the hub cache where TF Hub itself would put it."""
    policy = remote.visitor_policy()
    remote.check_url(handle, policy, resolve=False)  # AddressRefused, before anything is sent (open_url resolves)
    if settings.offline():
        raise WeightsUnavailable(f"This server is offline, so the TF Hub model {handle} cannot be downloaded; "
                                 "choose a Keras backbone instead.")
    from tensorflow_hub import file_utils, resolver

    def download(_: str, tmp_dir: str) -> None:
        with remote.open_url(remote.with_query(handle, "tf-hub-format=compressed"), policy) as body:
            file_utils.extract_tarfile_to_destination(body, tmp_dir, log_function=body.unpacked)

    module_dir = backbones.hub_module_dir(handle, cache)
    module_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        found = Path(resolver.atomic_download(handle, download, str(module_dir)))
    except AddressRefused:
        raise
    except Exception:  # noqa: BLE001 - any download failure gets the same plain sentence (the log has the cause)
        log.warning("The TF Hub model %s could not be downloaded", handle, exc_info=True)
        found = None
    if found is None or not (found / "saved_model.pb").is_file():
        raise WeightsUnavailable(
            f"The TF Hub model {handle} could not be downloaded (no such model, or not a TensorFlow SavedModel); "
            "check the address, or choose a Keras backbone."
        )
    return found


def _download(files: list[WeightsFile]) -> Path | None:
    """The first of these files Keras's downloader can fetch into its cache (None offline)."""
    if settings.offline():
        return None
    from tf_keras.utils import get_file

    for wf in files:
        try:
            return Path(get_file(wf.name, wf.url, cache_subdir="models", file_hash=wf.file_hash))
        except Exception:  # noqa: BLE001 - any download failure means: try the next file, then explain
            continue
    return None


_CHUNK = 1 << 16


def _hash_matches(path: Path, expected: str) -> bool:
    """Keras's rule: a 64-character hash is SHA-256, a shorter one MD5."""
    import hashlib

    digest = hashlib.sha256() if len(expected) == 64 else hashlib.md5()  # noqa: S324 - Keras's published hashes
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest() == expected


def download_weights(spec: BackboneSpec, image_size: int, progress: ProgressFn | None = None,
                     timeout: float = 30.0, ws: Path | None = None) -> tuple[Path, bool]:
    """Put a backbone's pretrained weights on this computer now, with progress: (file or folder, downloaded).

    For a teacher preparing a demo on a school network: fetched while online, used offline later.
    ImageNet files go to Keras's cache: streamed to a temporary name, their hash checked as Keras checks
    it, then renamed, so an interrupted download never leaves a half file under the real name. A TF Hub
    model (YAMNet) goes to the workspace's hub cache (`ws`), where training looks for it.
    """
    import urllib.request

    cache = backbones.hub_cache_dir(ws) if ws is not None else None
    cached = backbones.cached_weights(spec, image_size, ws)
    if cached is not None:
        return cached, False
    if "imagenet" not in spec.weights_options:
        raise WeightsUnavailable(f"{spec.label} has no pretrained weights to download.")
    if settings.offline():
        raise WeightsUnavailable(f"This computer is set to offline (TL_OFFLINE=1), so the weights of {spec.label} "
                                 "cannot be downloaded; unset it while connected to the internet.")
    if spec.hub_handle:
        if progress:
            progress(0.0, f"{spec.hub_handle}: downloading from TF Hub")
        found = fetch_hub(spec, cache)
        if progress:
            progress(1.0, f"{spec.hub_handle}: ready")
        return found, True
    models = backbones.keras_models_dir()
    models.mkdir(parents=True, exist_ok=True)
    problems = []
    for wf in spec.weights_candidates(image_size):
        part = models / f".{wf.name}.part"
        try:
            with urllib.request.urlopen(wf.url, timeout=timeout) as answer, part.open("wb") as out:
                total, done = int(answer.headers.get("Content-Length") or 0), 0
                while chunk := answer.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done / total if total else 0.0, f"{wf.name}: {done / 2**20:.1f} MB")
            if wf.file_hash and not _hash_matches(part, wf.file_hash):
                problems.append(f"{wf.name} arrived damaged (its checksum does not match)")
                continue
            final = models / wf.name
            part.replace(final)
            if progress:
                progress(1.0, f"{wf.name}: ready")
            return final, True
        except OSError as exc:
            why = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__  # no server path in the text
            problems.append(f"{wf.name} could not be downloaded ({why})")
        finally:
            part.unlink(missing_ok=True)
    raise WeightsUnavailable(f"The ImageNet weights of {spec.label} could not be fetched: {'; '.join(problems)}. "
                             "Check the internet connection and try again.")


def fetch_weights(spec: BackboneSpec, image_size: int) -> Path:
    """The ImageNet weights file (or TF Hub folder), from the cache or downloaded into it."""
    if spec.hub_handle:
        return fetch_hub(spec)
    cached = backbones.cached_weights(spec, image_size)
    if cached is not None:
        return cached
    if spec.package_file:  # shipped inside a Python package, never downloaded on its own
        raise WeightsUnavailable(f"The pretrained weights of {spec.label} come with the Python package "
                                 f"'{spec.package_file.split('/')[0]}', which is not installed; install it with pip.")
    candidates = spec.weights_candidates(image_size)
    fetched = _download(candidates)
    if fetched is not None:
        return fetched
    first = candidates[0].name if candidates else "(none)"
    if settings.hosted():  # a shared server: name the file, not the server's folders
        raise WeightsUnavailable(
            f"The ImageNet weights for {spec.label} ({first}) are not on this server and could not be downloaded; "
            f"choose another backbone, or {ASK_OPERATOR} to put {first} into the server's Keras cache."
        )
    models = backbones.keras_models_dir()
    raise WeightsUnavailable(
        f"The ImageNet weights for {spec.label} ({first}) are not in {models} and could not be "
        f"downloaded; connect to the internet once, or copy that file into {models}."
    )


def fetch_classifier(spec: BackboneSpec) -> Path:
    """The backbone's ImageNet classifier weights (with the ImageNet class names), cached or downloaded."""
    files = spec.top_weights_files(backbones.classifier_size(spec))
    if not files:
        raise WeightsUnavailable(f"{spec.label} has no ImageNet classifier, so it cannot name what it sees.")
    found = []
    models = backbones.keras_models_dir()
    for wanted in (files, [backbones.CLASS_INDEX]):
        cached = next((models / f.name for f in wanted if (models / f.name).is_file()), None)
        found.append(cached or _download(wanted))
    if None in found:
        missing = files[0].name if found[0] is None else backbones.CLASS_INDEX.name
        if settings.hosted():
            raise WeightsUnavailable(
                f"The ImageNet classifier of {spec.label} ({missing}) is not on this server and cannot be downloaded "
                f"now, so its guesses cannot be shown; {ASK_OPERATOR} to put {missing} into the server's Keras cache."
            )
        raise WeightsUnavailable(
            f"The ImageNet classifier of {spec.label} ({missing}) is not on this computer and cannot be downloaded "
            f"now, so its guesses cannot be shown; with internet once (or that file copied into "
            f"{models}) they can."
        )
    return found[0]


# ---------------------------------------------------------------- building


def make_network(spec: BackboneSpec, image_size: int, include_top: bool = False, weights: Any = None) -> Any:
    """The bare Keras application (or TF Hub layer) for raw preprocessed input of its kind (images: (S, S, 3);
    sounds: the log-mel picture its front end makes, or the waveform itself for a TF Hub sound model)."""
    if spec.hub_handle and spec.front_end == "waveform":
        return sounds.hub_network(str(fetch_hub(spec)))
    if spec.hub_handle:
        import tensorflow_hub as hub

        return hub.KerasLayer(str(fetch_hub(spec)), trainable=True, name="hub_model")
    module, attr = spec.constructor
    make = getattr(importlib.import_module(module), attr)
    # a sound backbone's network sees the picture its front end draws, not the waveform
    shape = (image_size, image_size, 3) if spec.front_end else inputs.get(spec.kind).signature(image_size)[0]
    return make(input_shape=shape, include_top=include_top, weights=weights, **spec.kwargs)


def build_base(spec: BackboneSpec, image_size: int, weights: str) -> Any:
    """The backbone as a Keras model from its kind's raw input (images: 0-255 RGB pixels) to its last feature map
    (or feature vector)."""
    import tf_keras as keras

    if spec.builds_base:  # a text encoder builds its whole base, raw input to one vector, itself
        module, attr = spec.constructor
        return getattr(importlib.import_module(module), attr)(spec, weights, **spec.kwargs)
    shape, dtype, _ = inputs.get(spec.kind).signature(image_size)
    if weights == "imagenet" and spec.keras_loads_weights:
        fetch_weights(spec, image_size)  # cached first, so Keras finds the file and downloads nothing
        net = make_network(spec, image_size, weights="imagenet")
    else:
        net = make_network(spec, image_size)
        if weights == "imagenet" and not spec.hub_handle:
            # Keras would fetch the same file; loading it ourselves lets sizes without a file of
            # their own reuse the nearest one (convolution filters do not depend on image size).
            net.load_weights(str(fetch_weights(spec, image_size)))
    if weights == "none":
        scratch_batchnorm(net)
    if spec.front_end:  # sounds: the input is a 16 kHz waveform (core.engine.sounds)
        raw = keras.Input(shape, dtype=dtype, name="waveform")
        x = raw if spec.front_end == "waveform" else sounds.front(spec, image_size)(raw)
    else:
        raw = x = keras.Input(shape, dtype=dtype, name="pixels")  # the name predates kinds: saved models keep it
    x = layers.preprocessing_layer(spec.preprocessing)(x)
    return keras.Model(raw, net(x), name=backbones.base_name(spec))


# BatchNorm's moving statistics for a network trained from scratch. Keras's default, 0.99, keeps 99 % of
# the old average per step: after the ~40 steps of a small dataset's epoch the averages still hold ~67 % of
# their initial values (mean 0, variance 1), so a model whose training accuracy climbs is near chance in
# inference mode (validation, test, export). 0.9 forgets the start within ~40 steps (0.9**40 ~ 1.5 %).
# `python -m core bench scratch-bn` shows both (issue 27).
SCRATCH_BN_MOMENTUM = 0.9


def scratch_batchnorm(net: Any, momentum: float = SCRATCH_BN_MOMENTUM) -> int:
    """Give every BatchNorm layer of a network trained from random weights (nested models too) the momentum
    of a short from-scratch run; how many it changed. A TF Hub layer keeps its own."""
    from tf_keras import layers as kl

    changed = 0
    for layer in getattr(net, "submodules", ()):
        if isinstance(layer, kl.BatchNormalization):
            layer.momentum = momentum
            changed += 1
    return changed


def small_cnn(input_shape: tuple[int, int, int], include_top: bool = False, weights: None = None,
              bn_momentum: float = SCRATCH_BN_MOMENTUM) -> Any:
    """A small residual CNN for training from scratch (the offline fallback), Keras-application style: a stem
    convolution, then four stages (32, 64, 128, 256 filters), each a 2x2 max-pool and a residual block of two
    3x3 convolutions, so every stage can pass its input through while it learns (He et al. 2016). On `shapes` it
    beats the plain four-convolution version by ~10 points over 3 seeds at about the same cost (issue 27)."""
    import tf_keras as keras
    from tf_keras import layers as kl

    def conv_bn(x: Any, filters: int, name: str, size: int = 3) -> Any:
        x = kl.Conv2D(filters, size, padding="same", use_bias=False, name=f"{name}_conv")(x)
        return kl.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)

    inputs = keras.Input(input_shape)
    x = kl.Activation("relu", name="stem_relu")(conv_bn(inputs, 32, "stem"))
    for i, filters in enumerate((32, 64, 128, 256)):
        x = kl.MaxPooling2D(name=f"block{i + 1}_pool")(x)
        shortcut = x if x.shape[-1] == filters else conv_bn(x, filters, f"block{i + 1}_proj", size=1)
        y = kl.Activation("relu", name=f"block{i + 1}_1_relu")(conv_bn(x, filters, f"block{i + 1}_1"))
        y = conv_bn(y, filters, f"block{i + 1}_2")
        x = kl.Activation("relu", name=f"block{i + 1}_out")(kl.Add(name=f"block{i + 1}_add")([shortcut, y]))
    return keras.Model(inputs, x, name="small_cnn")
