"""The Predictions page's sound parts: Grad-CAM over the spectrogram beside the clip's player, a long recording's
timeline of the top class per window, and mistakes shown with their spectrograms."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from core.engine import modeling
from core.spec import kinds as spec_kinds
from core.spec.config import RunConfig
from pages import _explainers, _kinds

RATE = 16_000


def _wav(seconds: float, freq: float = 800.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    buf = io.BytesIO()
    sf.write(buf, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_a_clips_explanation_is_its_spectrogram_with_a_heatmap_and_its_player():
    audio = spec_kinds.get("audio")
    model, _ = modeling.build(RunConfig(dataset_id="x", backbone="logmel_cnn", weights="none",
                                        strategy="from_scratch", image_size=32), 2)
    why = _explainers.explain_one(audio, model, _wav(1.0), 32, 1)
    assert "unavailable" not in why and why["class_index"] == 1
    assert why["image"].shape[:2] == why["heatmap"].shape and why["image"].shape[2] == 3
    assert why["audio"] and "moments and pitches" in _explainers.explainer(audio).about
    rows = _explainers.timeline_one(audio, model, _wav(3.0), ["a", "b"])
    assert [r["start"] for r in rows] == [0.0, 1.0, 2.0] and {r["prediction"] for r in rows} <= {"a", "b"}
    assert _explainers.timeline_one(audio, model, _wav(1.0), ["a", "b"]) == []  # one window: no timeline
    assert _explainers.timeline_one(spec_kinds.get("image"), model, _wav(3.0), ["a", "b"]) == []


def test_mistakes_of_sounds_are_shown_with_spectrograms_and_images_as_before():
    assert _kinds.gallery(spec_kinds.get("audio")).detailed_row is not None
    assert _kinds.gallery(spec_kinds.get("image")).detailed_row is None
