"""The sound kind's model side: the log-mel front end inside the model (so every export takes a 16 kHz
float waveform), augmentation of the waveform (background noise, gain, time shift, SpecAugment's time and
frequency masks), TF Hub sound models such as YAMNet (frame embeddings averaged per clip), and the
`InputKind` entry of the kind "audio".

The Keras classes are made and registered on first use (`custom_objects()`), as in `core.engine.layers`;
TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from core.data import sounds as data_sounds
from core.spec.backbones import BackboneSpec
from core.spec.config import AugmentConfig

# The front end: 25 ms windows every 10 ms, 64 mel bands from 125 Hz to 7.5 kHz (YAMNet's and the
# reference baseline's settings), in dB below the clip's loudest cell, at most TOP_DB down.
FRAME, STEP, FFT, MELS = 400, 160, 512, 64
LOW_HZ, HIGH_HZ = 125.0, 7500.0
TOP_DB = 80.0
FRAMES = 1 + (data_sounds.CLIP_SAMPLES - FRAME) // STEP  # 98 for one second


def log_mel(waveform: Any) -> Any:
    """(batch, samples) float32 waveform -> (batch, frames, MELS) log-mel power in dB (TensorFlow ops only)."""
    import tensorflow as tf

    stft = tf.signal.stft(waveform, FRAME, STEP, FFT, window_fn=tf.signal.hann_window, pad_end=False)
    power = tf.square(tf.abs(stft))
    # The mel filters as their few non-zero weights (each FFT bin feeds at most two bands): the bins gathered,
    # weighted and summed per band. The same numbers as a matrix product, but no constant of 1,024 values or more,
    # so a dynamic-range TFLite file keeps the front end in float: an 8-bit power spectrum (whose range spans
    # ten orders of magnitude) loses every quiet band.
    bins, bands, values = _mel_filters()
    contributions = tf.gather(power, bins, axis=-1) * values  # (batch, frames, non-zero weights)
    mel = tf.transpose(tf.math.unsorted_segment_sum(tf.transpose(contributions, [2, 0, 1]), bands, MELS), [1, 2, 0])
    return 10.0 * tf.math.log(mel + 1e-10) / tf.math.log(10.0)


@lru_cache(maxsize=1)
def _mel_filters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mel filter bank's non-zero weights: (FFT bin, mel band, weight) as three arrays."""
    import tensorflow as tf

    with tf.init_scope():  # eagerly, also when first asked while a model is traced
        weights = tf.signal.linear_to_mel_weight_matrix(MELS, FFT // 2 + 1, data_sounds.SAMPLE_RATE, LOW_HZ,
                                                        HIGH_HZ).numpy()
    bins, bands = np.nonzero(weights)
    return bins.astype(np.int32), bands.astype(np.int32), weights[bins, bands].astype(np.float32)


@lru_cache(maxsize=1)
def custom_objects() -> dict[str, type]:
    """Define and register the sound layers (once per process); returns them by class name."""
    return {"SpectrogramPicture": _spectrogram_picture(), "SoundAugment": _sound_augment(),
            "WaveformEmbedding": _waveform_embedding()}


def _spectrogram_picture() -> type:
    """SpectrogramPicture, defined on first use (TensorFlow is imported only then)."""
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="transferlab")
    class SpectrogramPicture(keras.layers.Layer):
        """A 16 kHz waveform -> its log-mel spectrogram as a (size, size, 3) picture of 0-255 values:
        dB below the clip's loudest cell (at most TOP_DB), time down the rows, pitch across."""

        def __init__(self, size: int = 96, **kwargs: Any):
            super().__init__(**kwargs)
            self.size = size

        def call(self, inputs: Any) -> Any:
            db = log_mel(inputs)
            db = db - tf.reduce_max(db, axis=[1, 2], keepdims=True)
            pixels = (tf.maximum(db, -TOP_DB) + TOP_DB) * (255.0 / TOP_DB)
            pic = tf.image.resize(tf.expand_dims(pixels, -1), (self.size, self.size))
            return tf.tile(pic, [1, 1, 1, 3])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "size": self.size}

    return SpectrogramPicture


def _sound_augment() -> type:
    """SoundAugment, defined on first use (TensorFlow is imported only then)."""
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="transferlab")
    class SoundAugment(keras.layers.Layer):
        """Random changes to training waveforms only: background noise, gain, time shift, SpecAugment masks
        (two time masks up to 0.1 s and two frequency masks up to 8 of 64 mel bands' width, done on the
        short-time spectrum and turned back into a waveform, so a preview can be listened to)."""

        def __init__(self, noise: bool = True, gain: bool = True, shift: bool = True, spec_mask: bool = True,
                     seed: int = 0, **kwargs: Any):
            super().__init__(**kwargs)
            self.noise, self.gain, self.shift, self.spec_mask, self.seed = noise, gain, shift, spec_mask, seed

        def _changed(self, x: Any) -> Any:
            batch, n = tf.shape(x)[0], tf.shape(x)[1]
            if self.shift:
                steps = tf.random.uniform([], -n // 10, n // 10 + 1, dtype=tf.int32)
                x = tf.roll(x, steps, axis=1)
            if self.gain:
                x = x * tf.pow(10.0, tf.random.uniform([batch, 1], -6.0, 6.0) / 20.0)
            if self.noise:
                rms = tf.sqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + 1e-9)
                snr_db = tf.random.uniform([batch, 1], 10.0, 30.0)
                x = x + tf.random.normal(tf.shape(x)) * rms / tf.pow(10.0, snr_db / 20.0)
            if self.spec_mask:
                x = self._masked(x, n)
            return tf.clip_by_value(x, -1.0, 1.0)

        def _masked(self, x: Any, n: Any) -> Any:
            spec = tf.signal.stft(x, FRAME, STEP, FFT, pad_end=True)
            frames, bins = tf.shape(spec)[1], tf.shape(spec)[2]
            keep = tf.ones(tf.shape(spec)[1:], tf.float32)
            for axis, limit, total in ((0, 10, frames), (1, 16, bins), (0, 10, frames), (1, 16, bins)):
                width = tf.random.uniform([], 0, limit, dtype=tf.int32)
                start = tf.random.uniform([], 0, tf.maximum(1, total - width), dtype=tf.int32)
                line = tf.cast((tf.range(total) < start) | (tf.range(total) >= start + width), tf.float32)
                keep *= line[:, None] if axis == 0 else line[None, :]
            spec = spec * tf.cast(keep, spec.dtype)[None]
            window = tf.signal.inverse_stft_window_fn(STEP)
            back = tf.signal.inverse_stft(spec, FRAME, STEP, FFT, window_fn=window)
            return back[:, :n]

        def call(self, inputs: Any, training: Any = None) -> Any:
            if not training:
                return inputs
            out = self._changed(inputs)
            return tf.ensure_shape(out, inputs.shape)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "noise": self.noise, "gain": self.gain, "shift": self.shift,
                    "spec_mask": self.spec_mask, "seed": self.seed}

    return SoundAugment


def _waveform_embedding() -> type:
    """WaveformEmbedding, defined on first use (TensorFlow is imported only then)."""
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="transferlab")
    class WaveformEmbedding(keras.layers.Layer):
        """A TF Hub sound model (YAMNet's signature: one 1-D 16 kHz waveform -> (scores, embeddings, ...))
        run on each clip of the batch; its frame embeddings averaged into one vector per clip. Frozen."""

        def __init__(self, handle: str = "", **kwargs: Any):
            super().__init__(trainable=False, **kwargs)
            self.handle = handle
            self.model = tf.saved_model.load(handle)
            probe = _embeddings(self.model(tf.zeros([data_sounds.CLIP_SAMPLES], tf.float32)))
            self.width = int(probe.shape[-1])

        def call(self, inputs: Any) -> Any:
            one = lambda w: tf.reduce_mean(_embeddings(self.model(w)), axis=0)  # noqa: E731 - a map_fn body
            return tf.map_fn(one, inputs, fn_output_signature=tf.TensorSpec([self.width], tf.float32))

        def compute_output_shape(self, input_shape: Any) -> Any:
            return (input_shape[0], self.width)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "handle": self.handle}

    return WaveformEmbedding


def _embeddings(out: Any) -> Any:
    """The frame embeddings among a sound model's outputs: YAMNet's second output (scores, embeddings,
    spectrogram), a dict's "embedding(s)", or the one output there is."""
    if isinstance(out, dict):
        key = next((k for k in ("embeddings", "embedding", "output_0") if k in out), next(iter(out)))
        out = out[key]
    elif isinstance(out, (list, tuple)):
        out = out[1] if len(out) == 3 else out[0]
    return out if len(out.shape) == 2 else out[None]


def sound_cnn(input_shape: tuple[int, int, int], include_top: bool = False, weights: None = None) -> Any:
    """The baseline network for sounds, trained from scratch on the spectrogram picture: four blocks of 3x3
    convolutions (16 to 128 filters), Keras-application style. Its batch normalisation follows the batches
    quickly (momentum 0.9), so validation after a few dozen steps already uses settled statistics."""
    import tf_keras as keras
    from tf_keras import layers as kl

    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((16, 32, 64, 128)):
        x = kl.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i + 1}_conv")(x)
        x = kl.BatchNormalization(momentum=0.9, name=f"block{i + 1}_bn")(x)
        x = kl.Activation("relu", name=f"block{i + 1}_relu")(x)
        x = kl.MaxPooling2D(name=f"block{i + 1}_pool")(x)
    return keras.Model(inputs, x, name="sound_cnn")


def front(spec: BackboneSpec, image_size: int) -> Any:
    """The layer between a sound backbone's waveform input and its network (a spectrogram picture for "logmel")."""
    return custom_objects()["SpectrogramPicture"](image_size, name="log_mel")


def hub_network(folder: str) -> Any:
    """A TF Hub sound model folder as a frozen Keras layer: waveform batch -> one embedding per clip."""
    return custom_objects()["WaveformEmbedding"](folder, name="hub_model")


def augmentation(aug: AugmentConfig, seed: int) -> Any:
    """The waveform's random changes while training, as one Keras layer named "augmentation"; None when no sound
    augmentation is switched on."""
    if not (aug.noise or aug.gain or aug.shift or aug.spec_mask):
        return None
    return custom_objects()["SoundAugment"](aug.noise, aug.gain, aug.shift, aug.spec_mask, seed, name="augmentation")


def augmentation_preview(waveform: np.ndarray, aug: AugmentConfig, seed: int, variants: int = 3) -> list[np.ndarray]:
    """[the clip as training hears it, then `variants` random augmentations], float32 16 kHz, to listen to."""
    import tensorflow as tf

    x = data_sounds.fit(np.asarray(waveform, np.float32))
    layer = augmentation(aug, seed)
    batch = tf.repeat(tf.constant(x)[None], variants, axis=0)
    changed = layer(batch, training=True) if layer is not None else batch
    return [x, *[np.asarray(v) for v in tf.unstack(changed)]]


def spectrogram(waveform: np.ndarray) -> np.ndarray:
    """A clip's log-mel spectrogram in dB, (MELS, frames) with low pitches first: for a picture beside the player."""
    import tensorflow as tf

    x = np.asarray(waveform, np.float32)
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    return log_mel(tf.constant(x)[None])[0].numpy().T


def band_hz(band: int) -> tuple[float, float]:
    """The pitch range (Hz) of one of the front end's mel bands (the same mel scale as TensorFlow's filters)."""
    to_mel = lambda hz: 1127.0 * np.log1p(hz / 700.0)  # noqa: E731 - the HTK mel scale, as tf.signal uses
    edges = np.linspace(to_mel(LOW_HZ), to_mel(HIGH_HZ), MELS + 2)
    hz = 700.0 * np.expm1(edges / 1127.0)
    band = int(np.clip(band, 0, MELS - 1))
    return float(hz[band]), float(hz[band + 2])


def timeline(model: Any, data: bytes, classes: list[str], seconds: float = data_sounds.WINDOW_SECONDS) -> list[dict]:
    """A recording longer than one window, cut into `seconds` windows: each window's start, top class and how sure
    the model is (one entry for a short clip). Silent windows are kept (they show where nothing happens)."""
    x, _ = data_sounds.decode(data)
    pieces = data_sounds.windows(x, seconds)
    batch = np.stack([data_sounds.fit(piece) for _, piece in pieces]).astype(np.float32)
    probs = np.asarray(model.predict_on_batch(batch))
    return [{"start": round(start, 2), "end": round(start + seconds, 2), "prediction": classes[int(np.argmax(p))],
             "confidence": round(float(np.max(p)), 4)} for (start, _), p in zip(pieces, probs)]
