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
from core.errors import ExportError
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
    # The integer files too: full int8 is calibrated on the ids of training texts (it failed on the texts before).
    rows = {r["file"]: r for r in export.report(run_dir, ["tflite-dynamic", "tflite-int8"])["variants"].values()}
    assert rows["model_int8.tflite"]["agreement"] >= 0.75 and rows["model_dynamic_int8.tflite"]["agreement"] >= 0.75
    assert texts.token_ids(["a chess game"]).dtype == np.int32
    with zipfile.ZipFile(export.export(run_dir, "tf-serving")) as zf:
        (ids,) = json.loads(zf.read("tf_serving/request.json"))["instances"]  # token ids: what its SavedModel takes
        assert "WordLlama token ids" in zf.read("tf_serving/README.md").decode()
    assert ids and all(isinstance(i, int) for i in ids)


def test_a_text_model_with_its_own_tokenizer_refuses_tflite_in_a_sentence(scratch_run):
    with pytest.raises(ExportError, match="no built-in operations for this model's own text preparation"):
        export.export(scratch_run, "tflite-int8")
    assert not (scratch_run / "exports" / "model_int8.tflite").exists()


def test_a_text_runs_card_and_code_speak_of_texts(scratch_run):
    from core.ship import card, codegen

    text = card.model_card(scratch_run)
    assert "text classifier" in text and "one text as a string" in text
    assert "test texts" in text and "Texts written differently" in text
    assert "photo" not in text.lower() and "pixels" not in text  # nothing of images is promised
    readme = card.code_readme(scratch_run, "data", "source")
    assert "does not train" in readme and "texts" in readme
    script = codegen.training_script(runs.load_config(scratch_run), "data", ws=scratch_run.parent.parent)
    assert "python -m core train config.json" in script and "sys.exit(" in script
