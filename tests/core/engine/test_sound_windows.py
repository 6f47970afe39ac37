"""A handed-in clip longer than the model's one second: `predict` (the CLI's, the Predictions page's "Try it" and
the server's :classify) answers the mean of the model's answers over its one-second windows."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from core.data import sounds as data_sounds
from core.engine import evaluation
from core.ship import serving
from core.spec.config import RunConfig
from core.store import runs
from core.store.files import write_json

RATE = data_sounds.SAMPLE_RATE


def _wav(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _tone(amp: float, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


class _Loudness:
    """A stand-in model of three classes whose answer for a one-second window follows its loudness."""

    def __init__(self):
        self.batches: list[int] = []

    def predict_on_batch(self, batch):
        self.batches.append(len(batch))
        assert batch.shape[1:] == (data_sounds.CLIP_SAMPLES,)
        loud = np.sqrt((batch ** 2).mean(axis=1))[:, None]  # 0 .. 0.7
        scores = np.concatenate([1.0 - loud, loud, np.full_like(loud, 0.5)], axis=1)
        return scores / scores.sum(axis=1, keepdims=True)


@pytest.fixture()
def sound_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runs.save_config(run_dir, RunConfig(dataset_id="x", backbone="logmel_cnn", weights="none",
                                        strategy="from_scratch", image_size=32))
    write_json(run_dir / "split.json", {"classes": ["quiet", "loud", "other"]})
    return run_dir


def test_a_three_second_clip_is_answered_by_the_mean_of_its_one_second_windows(sound_run):
    seconds = [_tone(0.05), _tone(0.1), _tone(0.9)]  # three different seconds, the middle one unlike their mean
    model = _Loudness()
    each = model.predict_on_batch(np.stack(seconds))
    answer = evaluation.predict(sound_run, [("three.wav", _wav(np.concatenate(seconds)))], top_k=3, model=model)[0]
    got = {t["class"]: t["probability"] for t in answer["top"]}
    mean = each.mean(axis=0)
    assert got == pytest.approx(dict(zip(["quiet", "loud", "other"], mean)), abs=1e-3)
    middle = each[1]  # what the middle second alone would answer
    assert abs(got["loud"] - middle[1]) > 0.05
    assert answer["prediction"] == ["quiet", "loud", "other"][int(np.argmax(mean))]


def test_a_one_second_clip_is_one_input_and_files_keep_their_places(sound_run):
    model = _Loudness()
    files = [("one.wav", _wav(_tone(0.4))), ("bad.wav", b"not a sound"), ("long.wav", _wav(_tone(0.4, 5.0)))]
    answers = evaluation.predict(sound_run, files, top_k=1, model=model)
    assert [a["file"] for a in answers] == ["one.wav", "bad.wav", "long.wav"] and "error" in answers[1]
    assert answers[0]["top"][0]["probability"] == pytest.approx(answers[2]["top"][0]["probability"], abs=1e-3)
    assert sum(model.batches) == 1 + 5  # the five-second clip: five windows, one batch


def test_the_servers_classify_answers_a_long_file_with_the_mean_of_its_windows(sound_run):
    seconds = [_tone(0.05), _tone(0.9)]
    model = _Loudness()
    served = serving.ServedModel(name="m", run_dir=sound_run, classes=["quiet", "loud", "other"], image_size=32,
                                 model=model, kind="audio")
    result = serving.classify_answer(served, [("two.wav", _wav(np.concatenate(seconds)))], None)["results"][0]
    got = {t["class"]: t["probability"] for t in result["top"]}
    assert got["loud"] == pytest.approx(model.predict_on_batch(np.stack(seconds))[:, 1].mean(), abs=1e-3)


def test_evaluation_averages_a_long_stored_clips_windows_as_predict_does(ws, tmp_path):
    import tensorflow as tf
    import tf_keras as keras

    from core.data.importer import import_path

    seconds = [_tone(0.05), _tone(0.1), _tone(0.9)]
    for label in ("a", "b"):
        (tmp_path / "src" / label).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "src" / label / f"{i}.wav").write_bytes(_wav(np.concatenate(seconds[::1 if i else -1])))
    info = import_path(tmp_path / "src", ws, name="long", window=3.0)  # each 3-second recording kept whole
    cfg = RunConfig(dataset_id=info["id"], backbone="logmel_cnn", weights="none", strategy="from_scratch",
                    image_size=32)
    run_dir = runs.create_run(cfg, ws)
    test = [[rel, i] for i, label in enumerate(info["classes"]) for rel in info["images"][label]]
    write_json(run_dir / "split.json", {"classes": info["classes"], "train": [], "val": [], "test": test})
    inputs = keras.Input((data_sounds.CLIP_SAMPLES,))
    loud = keras.layers.Lambda(lambda x: tf.sqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True)))(inputs)
    model = keras.Model(inputs, keras.layers.Lambda(lambda r: tf.concat([1.0 - r, r], axis=1))(loud))
    report = evaluation.evaluate(run_dir, model=model)
    each = np.asarray(model.predict_on_batch(np.stack(seconds)))
    for row in report["predictions"]:
        assert row["probs"] == pytest.approx(each.mean(axis=0).tolist(), abs=2e-3)  # not the middle second's
    assert abs(each.mean(axis=0)[1] - each[1][1]) > 0.05
