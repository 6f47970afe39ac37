"""Texts trained through the ordinary path: WordLlama (feature extraction, fine-tuning), the average word
embedding from scratch, a TF Hub text embedding by its real address (a stand-in SavedModel where TF Hub
would have unpacked the download), presets, predictions from typed texts and the words that decided."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.data import health, importer
from core.data import texts as data_texts
from core.engine import evaluation, interpret, modeling, networks, text_encoders, training
from core.errors import ConfigError, WeightsUnavailable
from core.spec import backbones, config as config_mod, strategies
from core.store import runs

needs_wordllama = pytest.mark.skipif(data_texts.wordllama_files() is None, reason="the wordllama package is not installed")

GAMES = ["a chess game", "play a puzzle game", "an arcade game with levels", "a strategy game online",
         "card game for friends", "a racing game", "game of cards and dice", "a board game engine",
         "a space shooter game", "a game of go", "a maze game for kids", "a multiplayer game"]
MAIL = ["read your mail", "a mail server", "send and receive email", "an email client", "mail filter for spam",
        "a mailing list manager", "email in the terminal", "imap mail sync", "mail delivery agent",
        "an email address book", "webmail for your mail", "secure email with keys"]


@pytest.fixture
def text_ds(ws, tmp_path) -> dict:
    rows = [(t, "games") for t in GAMES] + [(t, "mail") for t in MAIL]
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n", encoding="utf-8")
    return importer.import_path(path, ws)


def _train(ws: Path, **fields) -> Path:
    cfg = config_mod.RunConfig(**{"batch_size": 8, "seed": 1, **fields}).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.train_and_compare(cfg, run_dir)["state"] == "done"
    return run_dir


def test_scratch_baseline_trains_and_predicts_raw_strings(ws, text_ds):
    run_dir = _train(ws, dataset_id=text_ds["id"], backbone="avg_word_embedding", strategy="from_scratch",
                     weights="none", epochs=3, learning_rate=0.05)
    assert 0.0 <= json.loads((run_dir / "eval.json").read_text())["accuracy"] <= 1.0
    results = evaluation.predict(run_dir, [("t", b"a chess game"), ("empty", b"   ")])
    assert results[0]["prediction"] in ("games", "mail")
    assert "empty text" in results[1]["error"]


@needs_wordllama
def test_wordllama_feature_extraction_learns_and_explains_words(ws, text_ds):
    run_dir = _train(ws, dataset_id=text_ds["id"], backbone="wordllama", strategy="feature_extraction",
                     epochs=40, learning_rate=0.01, augment=config_mod.AugmentConfig(flip=True, rotate=True))
    trained = runs.load_config(run_dir)
    assert not trained.augment.any()  # a kind without augmentation trains on cached features
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "features" for e in events)
    model = evaluation.load_model(run_dir)
    probs = model.predict_on_batch(np.array(["a puzzle game", "my email inbox"], dtype=object))
    assert probs.argmax(axis=1).tolist() == [0, 1]  # classes are sorted: games, mail
    why = interpret.explain(model, b"a fun puzzle game", 128, kind="text")
    assert [w["word"] for w in why["words"]] == ["a", "fun", "puzzle", "game"]
    assert why["class_index"] == 0
    # Each word's weight is how much the class's probability falls without it: check one against the model.
    without_fun = float(model.predict_on_batch(np.array(["a puzzle game"], dtype=object))[0][0])
    assert why["words"][1]["weight"] == pytest.approx(why["probability"] - without_fun, abs=2e-3)


@needs_wordllama
def test_wordllama_table_is_the_wheels_and_fine_tuning_opens_it(ws, text_ds):
    table = text_encoders.wordllama_table()
    assert table.shape == (32_000, 256)
    cfg = config_mod.RunConfig(dataset_id=text_ds["id"], backbone="wordllama", strategy="fine_tune", epochs=1,
                               fine_tune_epochs=1, batch_size=8).validate()
    model, base = modeling.build(cfg, 2)
    np.testing.assert_array_equal(base.get_layer("wordllama").get_weights()[0], table)
    run_dir = _train(ws, dataset_id=text_ds["id"], backbone="wordllama", strategy="fine_tune", epochs=1,
                     fine_tune_epochs=1, fine_tune_learning_rate=0.01)
    tuned = evaluation.load_model(run_dir).get_layer(backbones.base_name(backbones.get("wordllama")))
    assert not np.array_equal(tuned.get_layer("wordllama").get_weights()[0], table)


def test_wordllama_missing_falls_back_to_the_scratch_baseline(ws, text_ds, monkeypatch):
    monkeypatch.setattr(backbones, "package_path", lambda package_file: None)
    with pytest.raises(WeightsUnavailable, match="Python package 'wordllama'"):
        networks.fetch_weights(backbones.get("wordllama"), 128)
    cfg = config_mod.RunConfig(dataset_id=text_ds["id"], backbone="wordllama", strategy="feature_extraction")
    settled, notices = training.resolve_weights(cfg)
    assert settled.backbone == "avg_word_embedding" and settled.strategy == "from_scratch"
    assert "pretrained weights of WordLlama" in notices[0]


def _stand_in_nnlm(folder: Path, dim: int = 8) -> None:
    """A SavedModel with NNLM's signature: a batch of strings -> (batch, dim) float32, words hashed and summed."""
    import tensorflow as tf

    class StandIn(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(tf.random.stateless_normal((500, dim), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, sentences):
            ids = tf.strings.to_hash_bucket_fast(tf.strings.split(tf.strings.lower(sentences)), 500)
            vectors = tf.ragged.map_flat_values(lambda i: tf.gather(self.table, i), ids)
            return tf.reduce_sum(vectors, axis=1)

    tf.saved_model.save(StandIn(), str(folder))


def test_tf_hub_text_embedding_by_its_address_offline(ws, text_ds):
    spec = backbones.get("nnlm_en_50")
    assert spec.kind == "text" and spec.hub_handle == "https://tfhub.dev/google/nnlm-en-dim50/2"
    backbones.use_hub_cache(ws)
    with pytest.raises(WeightsUnavailable, match="offline"):
        networks.fetch_hub(spec)  # the real download path, refused offline in one sentence
    _stand_in_nnlm(backbones.hub_module_dir(spec.hub_handle))  # where TF Hub unpacks the download
    run_dir = _train(ws, dataset_id=text_ds["id"], backbone="nnlm_en_50", strategy="feature_extraction", epochs=2)
    results = evaluation.predict(run_dir, [("t", b"a board game")])
    assert results[0]["prediction"] in ("games", "mail")


def test_text_presets_and_the_recommender_pick_text_encoders():
    rec = strategies.recommend_text({"a": 20, "b": 30}, ["wordllama"])
    assert rec.backbone == "wordllama"
    for name in ("quick", "balanced", "best", "recommended"):
        cfg = config_mod.preset(name, "d-1", rec.overrides() if name == "recommended" else None, kind="text")
        assert backbones.get(cfg.backbone).kind == "text" and not cfg.augment.any()
    fallback = strategies.recommend_text({"a": 20, "b": 30}, [])
    assert (fallback.backbone, fallback.strategy) == ("avg_word_embedding", "from_scratch")


def test_an_image_backbone_on_texts_is_refused(ws, text_ds):
    with pytest.raises(ConfigError, match="holds texts"):
        health.check_trainable(text_ds, "mobilenet_v2_1.0")
