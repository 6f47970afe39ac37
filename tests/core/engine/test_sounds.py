"""Sounds through the model: the log-mel front end inside it (the model takes a 16 kHz waveform), waveform
augmentation only while training, training, evaluation and prediction through the ordinary path, and a
TF Hub sound model with YAMNet's signature (a locally built stand-in SavedModel; the real YAMNet cannot be
downloaded here)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.data import sounds as data_sounds
from core.data.importer import import_path
from core.engine import evaluation, inputs, sounds, training
from core.errors import ConfigError, WeightsUnavailable
from core.spec import backbones
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs

RATE = data_sounds.SAMPLE_RATE


def _clip(freq: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(RATE) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, RATE)).astype(np.float32)


def _wav(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def beeps_source(tmp_path_factory) -> Path:
    """Two classes of one-second tones, low and high, 12 each."""
    src = tmp_path_factory.mktemp("beeps") / "beeps"
    rng = np.random.default_rng(0)
    for label, base in (("low", 300.0), ("high", 2500.0)):
        (src / label).mkdir(parents=True)
        for i in range(12):
            (src / label / f"{i}.wav").write_bytes(_wav(_clip(base * (1 + i / 30), rng)))
    return src


def test_the_front_end_turns_a_waveform_into_a_spectrogram_picture():
    layer = sounds.custom_objects()["SpectrogramPicture"](64)
    x = np.stack([_clip(440.0, np.random.default_rng(1)), np.zeros(RATE, np.float32)])
    pic = layer(x).numpy()
    assert pic.shape == (2, 64, 64, 3) and pic.min() >= 0 and pic.max() <= 255.0 + 1e-3
    assert pic[0].max() == pytest.approx(255.0, abs=1.0)
    spec = sounds.spectrogram(x[0])
    assert spec.shape == (sounds.MELS, sounds.FRAMES)
    assert np.argmax(spec.mean(axis=1)) < sounds.MELS // 2  # 440 Hz lies in the lower mel bands


def test_augmentation_changes_waveforms_only_while_training():
    layer = sounds.augmentation(AugmentConfig(flip=False, rotate=False, noise=True, gain=True, shift=True,
                                              spec_mask=True), seed=1)
    x = np.stack([_clip(440.0, np.random.default_rng(2))] * 2)
    assert np.array_equal(layer(x, training=False).numpy(), x)
    changed = layer(x, training=True).numpy()
    assert changed.shape == x.shape and not np.allclose(changed, x) and np.abs(changed).max() <= 1.0
    assert sounds.augmentation(AugmentConfig(), seed=1) is None  # the image flags do nothing to sounds
    preview = sounds.augmentation_preview(x[0], AugmentConfig(noise=True), seed=0, variants=2)
    assert len(preview) == 3 and all(p.shape == (RATE,) for p in preview)


def test_a_sound_run_trains_evaluates_and_predicts_from_a_waveform(ws, beeps_source):
    info = import_path(beeps_source, ws, name="beeps")
    cfg = RunConfig(dataset_id=info["id"], backbone="logmel_cnn", weights="none", strategy="from_scratch",
                    image_size=32, epochs=15, batch_size=4, patience=0, learning_rate=3e-3,
                    augment=AugmentConfig(flip=False, rotate=False, gain=True)).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    model = evaluation.load_model(run_dir)
    assert tuple(model.inputs[0].shape[1:]) == (data_sounds.CLIP_SAMPLES,)
    # One clip handed in as a file: the same decoding as at import, one second at 16 kHz.
    high = _wav(_clip(2600.0, np.random.default_rng(5)))
    x = inputs.decode(cfg, high)
    assert x.shape == (data_sounds.CLIP_SAMPLES,) and x.dtype == np.float32
    assert inputs.tensor_spec(cfg).shape.as_list() == [None, data_sounds.CLIP_SAMPLES]
    answer = evaluation.predict(run_dir, [("high.wav", high)], model=model)[0]
    assert answer["prediction"] == "high"


def test_a_sound_backbone_is_refused_for_images_and_the_reverse(ws, tiny):
    from core.data import health

    with pytest.raises(ConfigError) as err:
        health.check_trainable(tiny, "logmel_cnn")
    assert "reads clips" in str(err.value)
    assert set(backbones.for_kind("audio")) >= {"logmel_cnn", "logmel_mobilenet_v1_0.25", "yamnet"}
    assert all(backbones.get(b).kind == "image" for b in backbones.for_kind("image"))


def _stand_in_yamnet(folder: Path, width: int = 1024) -> Path:
    """A SavedModel with YAMNet's signature: a 1-D float32 16 kHz waveform -> (scores [frames, 521],
    embeddings [frames, width], log-mel spectrogram [frames', 64]); frames every 0.48 s."""
    import tensorflow as tf

    class StandIn(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.project = tf.Variable(rng.normal(0, 0.1, (sounds.MELS, width)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, waveform):
            mel = sounds.log_mel(waveform[None])[0]  # frames x 64
            frames = tf.signal.frame(mel, 48, 48, axis=0, pad_end=True)  # 0.48 s patches
            emb = tf.nn.relu(tf.reduce_mean(frames, axis=1) @ self.project)
            scores = tf.nn.sigmoid(emb[:, :521])
            return scores, emb, mel

    tf.saved_model.save(StandIn(), str(folder))
    return folder


def test_a_tf_hub_sound_model_with_yamnets_signature_gives_one_embedding_per_clip(tmp_path):
    folder = _stand_in_yamnet(tmp_path / "yamnet")
    layer = sounds.hub_network(str(folder))
    out = layer(np.stack([_clip(300.0, np.random.default_rng(3)), _clip(3000.0, np.random.default_rng(4))])).numpy()
    assert out.shape == (2, 1024) and not np.allclose(out[0], out[1])
    spec = backbones.get(backbones.hub_id(str(folder), kind="audio"))
    assert spec.kind == "audio" and spec.front_end == "waveform"


def test_feature_extraction_on_a_stand_in_yamnet_trains_from_cached_embeddings(ws, beeps_source, tmp_path):
    folder = _stand_in_yamnet(tmp_path / "yamnet", width=64)
    info = import_path(beeps_source, ws, name="beeps")
    cfg = RunConfig(dataset_id=info["id"], backbone=backbones.hub_id(str(folder), kind="audio"), weights="imagenet",
                    strategy="feature_extraction", image_size=96, epochs=15, batch_size=4, patience=0,
                    learning_rate=1e-2, augment=AugmentConfig(flip=False, rotate=False)).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    assert list((ws / "cache" / "features").glob("*"))  # embeddings computed once, cached like image features
    assert json.loads((run_dir / "eval.json").read_text())["accuracy"] >= 0.5


def test_the_real_yamnet_offline_says_so_in_one_sentence(ws):
    from core.engine import networks

    with pytest.raises(WeightsUnavailable) as err:
        networks.fetch_weights(backbones.get("yamnet"), 96)
    assert "offline" in str(err.value) and "https://tfhub.dev/google/yamnet/1" in str(err.value)


def test_presets_and_the_recommender_choose_sound_backbones_and_never_freeze_an_imagenet_cnn_on_sound():
    from core.spec import config as config_mod
    from core.spec import strategies

    for name, values in config_mod.presets("audio").items():
        spec = backbones.get(values["backbone"])
        assert spec.kind == "audio", name
        assert not (spec.front_end == "logmel" and "imagenet" in spec.weights_options
                    and values["strategy"] == "feature_extraction"), name
        assert config_mod.preset(name, "d", kind="audio").backbone == values["backbone"]
    counts = {"yes": 60, "no": 60}
    assert strategies.recommend_sound(counts, cached=[]).backbone == "logmel_cnn"
    with_imagenet = strategies.recommend_sound(counts, cached=["logmel_mobilenet_v2_0.35"])
    assert (with_imagenet.backbone, with_imagenet.strategy) == ("logmel_mobilenet_v2_0.35", "fine_tune")
    assert strategies.recommend_sound(counts, cached=["yamnet", "logmel_mobilenet_v2_0.35"]).backbone == "yamnet"
    # The image recommender never falls back to a sound backbone whose (MobileNet) weights are cached.
    assert strategies.recommend({"a": 50, "b": 50}, True, cached=["logmel_mobilenet_v1_0.25"]).backbone != \
        "logmel_mobilenet_v1_0.25"
    assert backbones.best_available(96, "image") is None or backbones.best_available(96, "image").kind == "image"
