"""A sound run leaves as files that take a 16 kHz waveform: every export checked against the Keras model on the
test clips (LiteRT runs the TFLite files with the log-mel front end inside), the TF Serving layout, `serve`
answering :predict with waveforms and :classify with uploaded clips, and the command line's evaluate/predict."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import cli
from core.data import sounds as data_sounds
from core.data.importer import import_path
from core.engine import training
from core.ship import export, serving
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs

RATE = data_sounds.SAMPLE_RATE


def _wav(freq: float, rng: np.random.Generator) -> bytes:
    t = np.arange(RATE) / RATE
    x = (0.4 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, RATE)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sound_run(tmp_path_factory) -> Path:
    """A finished logmel_cnn run (from scratch) on two classes of tones, in its own workspace."""
    root = tmp_path_factory.mktemp("sound-export")
    src, ws = root / "beeps", root / "ws"
    rng = np.random.default_rng(0)
    for label, base in (("low", 300.0), ("high", 2500.0)):
        (src / label).mkdir(parents=True)
        for i in range(12):
            (src / label / f"{i}.wav").write_bytes(_wav(base * (1 + i / 30), rng))
    ws.mkdir()
    info = import_path(src, ws, name="beeps")
    cfg = RunConfig(dataset_id=info["id"], backbone="logmel_cnn", weights="none", strategy="from_scratch",
                    image_size=32, epochs=6, batch_size=4, patience=0, learning_rate=3e-3,
                    augment=AugmentConfig(flip=False, rotate=False)).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    return run_dir


def test_every_sound_export_is_checked_against_the_keras_model(sound_run):
    for fmt in ("keras", "labels", "savedmodel", "tf-serving"):
        assert export.export(sound_run, fmt).is_file()  # the SavedModel is refused unless it reproduces Keras
    assert export.labels_text(sound_run).split() == ["high", "low"]
    with zipfile.ZipFile(sound_run / "exports" / "savedmodel.zip") as zf:
        assert "savedmodel/saved_model.pb" in zf.namelist()
    with zipfile.ZipFile(sound_run / "exports" / "tf_serving.zip") as zf:  # TF Serving's layout, the dataset's name
        assert "tf_serving/beeps/1/saved_model.pb" in zf.namelist()
        assert len(json.loads(zf.read("tf_serving/request.json"))["instances"][0]) == RATE  # a waveform
    ids = ["tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8"]
    for fmt in ids:
        export.export(sound_run, fmt)
    report = export.report(sound_run, ids)
    rows = {r["file"]: r for r in report["variants"].values()}
    assert {"model_float32.tflite", "model_float16.tflite", "model_dynamic_int8.tflite", "model_int8.tflite"} <= set(rows)
    # Float files agree with Keras on every test clip; the front end (STFT, mel, log) is inside each file.
    for name in ("model_float32.tflite", "model_float16.tflite"):
        assert rows[name]["agreement"] == 1.0 and rows[name]["max_abs_diff"] < 0.02, name
    # The integer files keep the front end in float (an 8-bit power spectrum lost every quiet band: 56 % and 44 %
    # agreement before), so they answer as Keras does on these clips too.
    for name in ("model_dynamic_int8.tflite", "model_int8.tflite"):
        assert report["n"] > 0 and rows[name]["agreement"] == 1.0 and rows[name]["max_abs_diff"] < 0.05, name
    from ai_edge_litert.interpreter import Interpreter

    full = Interpreter(model_path=str(sound_run / "exports" / "model_int8.tflite"))
    assert full.get_input_details()[0]["dtype"] == np.float32  # the waveform, not 8-bit audio
    tensors = full.get_tensor_details()
    assert any(t["dtype"] == np.int8 and "conv" in t["name"].lower() for t in tensors)  # the network is int8
    front = [t for t in tensors if "/log_mel/" in t["name"] and ("stft" in t["name"] or "Segment" in t["name"])]
    assert front and all(t["dtype"] != np.int8 for t in front)  # spectrum and mel bands in float


def test_serve_answers_predict_with_waveforms_and_classify_with_clips(sound_run):
    from fastapi.testclient import TestClient

    served = serving.load(sound_run)
    client = TestClient(serving.create_app([served]))
    high = _wav(2600.0, np.random.default_rng(9))
    wave = data_sounds.load_clip(high)
    answer = client.post(f"/v1/models/{served.name}:predict", json={"instances": [wave.tolist()]})
    assert answer.status_code == 200
    probs = np.asarray(answer.json()["predictions"][0])
    assert np.allclose(probs, served.probabilities(wave[None])[0], atol=1e-5)
    named = client.post(f"/v1/models/{served.name}:predict", json={"instances": [{"waveform": wave.tolist()}]})
    assert np.allclose(named.json()["predictions"][0], probs, atol=1e-5)
    classified = client.post(f"/v1/models/{served.name}:classify", files=[("file", ("high.wav", high, "audio/wav"))])
    assert classified.status_code == 200
    result = classified.json()["results"][0]
    # The uploaded clip is decoded exactly as for :predict (and `predict`): the same probabilities.
    assert result["prediction"] == served.classes[int(np.argmax(probs))]
    assert {t["class"]: t["probability"] for t in result["top"]}[result["prediction"]] == pytest.approx(probs.max(),
                                                                                                         abs=1e-5)
    wrong = client.post(f"/v1/models/{served.name}:predict", json={"instances": [[0.0] * 100]})
    assert wrong.status_code == 400 and "16000" in wrong.json()["error"] and "waveform" in wrong.json()["error"]
    loud = client.post(f"/v1/models/{served.name}:predict", json={"instances": [[2.0] * RATE]})
    assert loud.status_code == 400 and "outside -1-1" in loud.json()["error"]


def test_evaluate_and_predict_a_clip_on_the_command_line(sound_run, tmp_path, capsys):
    ws = sound_run.parent.parent
    assert cli.main(["evaluate", sound_run.name, "--workspace", str(ws), "--json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1
    clip = tmp_path / "clip.wav"
    clip.write_bytes(_wav(320.0, np.random.default_rng(4)))
    assert cli.main(["predict", sound_run.name, str(clip), "--workspace", str(ws), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    first = out[0] if isinstance(out, list) else out["results"][0]
    probs = serving.load(sound_run).probabilities(data_sounds.load_clip(clip.read_bytes())[None])[0]
    assert first["prediction"] == export.classes(sound_run)[int(np.argmax(probs))]
