"""Texts leaving the app: a SavedModel from raw strings (the from-scratch baseline), a WordLlama SavedModel
from token ids with its tokenizer and wrapper, its TFLite file run with LiteRT, and serving
{"instances": ["a text", ...]}."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.data import importer
from core.data import texts as data_texts
from core.engine import evaluation, texts, training
from core.ship import export, serving
from core.spec.config import RunConfig
from core.store import runs

ROWS = ([(f"a {w} game to play", "games") for w in ("chess", "puzzle", "racing", "card", "board", "maze", "space",
                                                     "arcade", "dice", "word", "strategy", "war")]
        + [(f"read {w} mail fast", "mail") for w in ("your", "secure", "spam", "team", "web", "imap", "local", "old",
                                                     "new", "encrypted", "plain", "shared")])


def _run(ws: Path, tmp: Path, backbone: str, **fields) -> Path:
    path = tmp / "t.csv"
    path.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in ROWS) + "\n", encoding="utf-8")
    info = importer.import_path(path, ws)
    cfg = RunConfig(dataset_id=info["id"], backbone=backbone, batch_size=8, **fields).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.train_and_compare(cfg, run_dir)["state"] == "done"
    return run_dir


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("text-export")
    return _run(tmp / "ws", tmp, "avg_word_embedding", strategy="from_scratch", weights="none", epochs=2)


def test_scratch_savedmodel_takes_raw_strings(scratch_run):
    import tensorflow as tf

    export.export(scratch_run, "savedmodel")
    serve = tf.saved_model.load(str(export.savedmodel_dir(scratch_run))).signatures["serving_default"]
    probs = serve(text=tf.constant(["a chess game to play", "read spam mail"]))["probabilities"].numpy()
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_tf_serving_request_holds_a_text(scratch_run):
    with zipfile.ZipFile(export.export(scratch_run, "tf-serving")) as zf:
        body = json.loads(zf.read("tf_serving/request.json"))
        readme = zf.read("tf_serving/README.md").decode()
    assert "`text` (string, N texts" in readme and "pixels" not in readme
    (text,) = body["instances"]
    assert isinstance(text, str) and (text, ) in {(t, ) for t, _ in ROWS}  # one of the run's own texts


def test_serving_answers_instances_of_texts(scratch_run):
    client = TestClient(serving.create_app([serving.load(scratch_run)]))
    name = serving.default_name(scratch_run)
    answer = client.post(f"/v1/models/{name}:predict", json={"instances": ["a chess game", "read my mail"]})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    empty = client.post(f"/v1/models/{name}:predict", json={"instances": ["  "]})
    assert empty.status_code == 400 and "empty text" in empty.json()["error"]


@pytest.mark.skipif(data_texts.wordllama_files() is None, reason="the wordllama package is not installed")
def test_wordllama_exports_take_token_ids_with_tokenizer_and_tflite_agrees(tmp_path):
    run_dir = _run(tmp_path / "ws", tmp_path, "wordllama", strategy="feature_extraction", epochs=2)
    with zipfile.ZipFile(export.export(run_dir, "savedmodel")) as zf:
        names = set(zf.namelist())
    assert {"tokenizer.json", "predict_texts.py", "labels.txt", "savedmodel/saved_model.pb"} <= names
    tflite = export.export(run_dir, "tflite")
    ids_probs = export.tflite_predict(tflite, np.array([b"a chess game to play"], dtype=object))
    keras_probs = evaluation.load_model(run_dir).predict_on_batch(np.array(["a chess game to play"], dtype=object))
    np.testing.assert_allclose(ids_probs, keras_probs, atol=1e-4)
    assert texts.token_ids(["a chess game"]).dtype == np.int32
    with zipfile.ZipFile(export.export(run_dir, "tf-serving")) as zf:
        (ids,) = json.loads(zf.read("tf_serving/request.json"))["instances"]  # token ids: what its SavedModel takes
        assert "WordLlama token ids" in zf.read("tf_serving/README.md").decode()
    assert ids and all(isinstance(i, int) for i in ids)
