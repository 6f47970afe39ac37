"""The strategies beyond plain transfer, on texts: distillation (WordLlama teaches the average word embedding),
domain adaptation (texts of one product line up with another's), and the strategies that do not apply to texts,
refused by config with the sentence the Model page shows (strategies.refusal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data import importer
from core.engine import distill, training
from core.errors import ConfigError
from core.spec import config as config_mod, strategies
from core.store import runs
from tests.core.engine.test_text_engine import GAMES, MAIL, needs_wordllama

def _dataset(ws: Path, name: str, games: list[str], mail: list[str]) -> str:
    path = ws.parent / f"{name}.csv"
    rows = [(t, "games") for t in games] + [(t, "mail") for t in mail]
    path.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n", encoding="utf-8")
    return importer.import_path(path, ws)["id"]


def _train(ws: Path, **fields) -> Path:
    cfg = config_mod.RunConfig(**{"batch_size": 8, "seed": 1, **fields}).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.train_and_compare(cfg, run_dir)["state"] == "done"
    return run_dir


def test_strategies_that_do_not_apply_to_texts_are_refused_with_their_sentence(ws):
    text_ids = strategies.for_kind("text")
    assert "layer_transfer" not in text_ids and "gradual_unfreeze" not in text_ids
    assert {"feature_extraction", "fine_tune", "distill", "domain_adversarial", "adaptive_layers"} <= set(text_ids)
    assert strategies.for_kind("image") == strategies.ids()
    for strategy in ("layer_transfer", "gradual_unfreeze"):
        why = strategies.refusal(strategy, "text")
        assert why and why.endswith(".") and "text encoder" in why
        with pytest.raises(ConfigError) as err:
            config_mod.RunConfig(dataset_id="d", backbone="wordllama", strategy=strategy, fine_tune_epochs=1,
                                 source_run="20260101-120000-0123456789ab").validate()
        assert str(err.value) == why
    assert strategies.refusal("layer_transfer", "image") is None


@needs_wordllama
def test_wordllama_teaches_the_average_word_embedding(ws):
    ds = _dataset(ws, "packages", GAMES, MAIL)
    teacher = _train(ws, dataset_id=ds, backbone="wordllama", strategy="feature_extraction", epochs=20,
                     learning_rate=0.01)
    student = _train(ws, dataset_id=ds, backbone="avg_word_embedding", weights="none", strategy="distill",
                     source_run=teacher.name, epochs=3, learning_rate=0.05)
    report = distill.read_report(student)
    assert [r["role"] for r in report["rows"]] == ["teacher", "distilled"]
    assert [r["backbone"] for r in report["rows"]] == ["wordllama", "avg_word_embedding"]
    assert all(r["ms_per_image"] > 0 for r in report["rows"])  # timed on texts, not on pixels
    assert report["rows"][1]["params"] < report["rows"][0]["params"]  # the student is the small one


@needs_wordllama
def test_texts_of_one_product_adapt_to_another(ws):
    source = _dataset(ws, "desktop", GAMES, MAIL)
    target = _dataset(ws, "phone", [f"{t} on your phone" for t in GAMES], [f"{t} on your phone" for t in MAIL])
    run_dir = _train(ws, dataset_id=source, backbone="wordllama", strategy="domain_adversarial",
                     target_dataset_id=target, epochs=2, fine_tune_epochs=0)
    target_eval = json.loads((run_dir / "eval.json").read_text())["target"]
    assert 0.0 <= target_eval["accuracy"] <= 1.0


@needs_wordllama
def test_a_search_over_text_runs_stays_with_text_encoders(ws):
    from core.errors import StudyError
    from core.service import studies, tuner

    ds = _dataset(ws, "packages", GAMES, MAIL)
    base = config_mod.RunConfig(dataset_id=ds, backbone="wordllama", strategy="feature_extraction", epochs=3,
                                batch_size=8, seed=1).validate()
    names = [p.name for p in studies.space(base, ["lr", "augment", "backbone"])]
    assert "augment" not in names  # texts have no augmentation to search
    assert all(backbones_kind == "text" for backbones_kind in
               [config_mod.backbones.get(b).kind for b in studies._backbone_choices(base, None)])
    with pytest.raises(StudyError, match="another kind of data"):
        studies.space(base, ["lr"], backbone_ids=["wordllama", "mobilenet_v2_1.0"])
    study_id = studies.create(base, ws, trials=2, search=["lr"])
    result = tuner.work(study_id, ws)
    assert result["counts"]["complete"] == 2
    trials = studies.show(study_id, ws)["trials"]
    assert {runs.load_config(runs.run_path(t["run_id"], ws)).backbone for t in trials} == {"wordllama"}


@needs_wordllama
def test_a_text_model_is_pruned_on_its_texts(ws):
    from core.ship import pruning

    ds = _dataset(ws, "packages", GAMES, MAIL)
    parent = _train(ws, dataset_id=ds, backbone="wordllama", strategy="fine_tune", epochs=2, fine_tune_epochs=1)
    child, result = pruning.prune_run(parent, 0.5, 1)
    assert result["state"] == "done" and result["sparsity_reached"] == pytest.approx(0.5, abs=0.05)
    assert runs.load_config(child).backbone == "wordllama"


def test_health_sentences_of_a_text_dataset_say_texts(ws):
    from core.data import health
    from core.errors import DatasetError
    from core.store import datasets

    ds = _dataset(ws, "few", GAMES[:6] + GAMES[:1], MAIL)
    info = datasets.load_dataset(ds, ws)
    assert any(w.startswith("Class 'games' has only 7 texts;") for w in info["warnings"])
    assert any(w.startswith("1 text(s) are exact copies of another text") for w in info["warnings"])
    assert not any("image" in w for w in info["warnings"])
    with pytest.raises(DatasetError, match=r"has only 7 texts; add at least 10 texts"):
        health.check_trainable(info)
    assert health.health_warnings({"a": 6, "b": 400})[0] == "Class 'a' has only 6 images; add at least 10 before training."
