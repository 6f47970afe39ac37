"""Explaining sound predictions: Grad-CAM over the spectrogram the model makes inside itself ("which moments and
pitches decided"), and a long recording's timeline of the top class per window."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from core.data import sounds as data_sounds
from core.engine import interpret, modeling, sounds
from core.spec.config import RunConfig

RATE = data_sounds.SAMPLE_RATE


def _wav(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _tone(freq: float, seconds: float = 1.0, start: float = 0.0, length: float | None = None) -> np.ndarray:
    """`seconds` of near-silence with a tone of `freq` Hz from `start` for `length` seconds."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.001, int(RATE * seconds)).astype(np.float32)
    a, b = int(start * RATE), int((start + (length or seconds - start)) * RATE)
    t = np.arange(b - a) / RATE
    x[a:b] += (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x


@pytest.fixture(scope="module")
def sound_model():
    cfg = RunConfig(dataset_id="x", backbone="logmel_cnn", weights="none", strategy="from_scratch", image_size=32)
    model, _ = modeling.build(cfg, 2)
    return model


def test_gradcam_over_the_spectrogram_maps_back_to_time_and_pitch(sound_model):
    why = interpret.explain(sound_model, _wav(_tone(1000.0, start=0.3, length=0.3)), 32, kind="audio")
    assert why["spectrogram"].shape == why["heatmap"].shape == (sounds.MELS, sounds.FRAMES)
    assert 0.0 <= why["heatmap"].min() and why["heatmap"].max() <= 1.0
    assert why["class_index"] in (0, 1) and why["layer"]
    low, high = why["pitch_hz"]
    assert sounds.LOW_HZ <= low < high <= sounds.HIGH_HZ
    assert 0.0 <= why["seconds"] <= 1.0
    other = interpret.explain(sound_model, _wav(_tone(1000.0, start=0.3, length=0.3)), 32, class_index=1 - why["class_index"],
                              kind="audio")
    assert other["class_index"] == 1 - why["class_index"]


def test_mel_bands_cover_the_front_ends_range_from_low_to_high():
    assert sounds.band_hz(0)[0] == pytest.approx(sounds.LOW_HZ)
    assert sounds.band_hz(sounds.MELS - 1)[1] == pytest.approx(sounds.HIGH_HZ)
    assert sounds.band_hz(10)[0] < sounds.band_hz(11)[0]


class _Loudness:
    """A stand-in model: class 1 when the window is loud, class 0 when quiet."""

    def predict_on_batch(self, batch):
        loud = (np.sqrt((batch ** 2).mean(axis=1)) > 0.1).astype(float)
        return np.stack([1 - loud, loud], axis=1) * 0.9 + 0.05


def test_a_long_recordings_timeline_gives_the_top_class_per_window():
    x = _tone(440.0, seconds=4.0, start=2.0, length=2.0)  # quiet for 2 s, then a tone for 2 s
    line = sounds.timeline(_Loudness(), _wav(x), ["quiet", "tone"])
    assert [(w["start"], w["prediction"]) for w in line] == [(0.0, "quiet"), (1.0, "quiet"), (2.0, "tone"),
                                                             (3.0, "tone")]
    assert all(w["end"] == w["start"] + 1.0 and w["confidence"] == pytest.approx(0.95) for w in line)
    assert len(sounds.timeline(_Loudness(), _wav(_tone(440.0)), ["quiet", "tone"])) == 1  # a clip: one window
