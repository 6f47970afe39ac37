"""A study's head-only trials share one backbone and their features, and each still is a complete run that
Predictions, Compare and Export open (core.engine.trials)."""

from types import SimpleNamespace

import numpy as np
import pytest

from core.data import tfdata
from core.engine import evaluation, modeling, networks, trials
from core.service import compare, studies, tuner
from core.ship import export
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, runs
from core.store.files import read_json

NO_AUG = AugmentConfig(flip=False, rotate=False)


def _config(dataset_id: str, **changes) -> RunConfig:
    base = RunConfig(dataset_id=dataset_id, backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=2,
                     batch_size=8, patience=0, augment=NO_AUG, val_fraction=0.2, test_fraction=0.2)
    return base.with_changes(**changes).validate()


def test_only_trials_that_train_the_head_alone_share_the_backbone():
    assert trials.head_only(_config("d-0123abcd"))
    assert trials.head_only(_config("d-0123abcd", augment=AugmentConfig(flip=True, rotate=False), augment_views=2))
    # The backbone changes, or it sees new augmented images every epoch, or another method trains it: no sharing.
    assert not trials.head_only(_config("d-0123abcd", strategy="fine_tune", weights="imagenet", fine_tune_epochs=1))
    assert not trials.head_only(_config("d-0123abcd", augment=AugmentConfig(flip=True, rotate=False)))
    assert not trials.head_only(_config("d-0123abcd", strategy="from_scratch"))
    assert not trials.head_only(_config("d-0123abcd"), has_target=True)
    assert not trials.head_only(_config("d-0123abcd"), distributed=True)


def _count_builds(monkeypatch) -> list[str]:
    built: list[str] = []
    original = networks.build_base

    def counting(spec, image_size, weights):
        built.append(spec.id)
        return original(spec, image_size, weights)

    monkeypatch.setattr(networks, "build_base", counting)
    return built


def test_head_only_trials_build_the_backbone_once_and_each_stays_a_complete_run(ws, tiny, tiny_source, monkeypatch):
    built = _count_builds(monkeypatch)
    study_id = studies.create(_config(tiny["id"]), ws, trials=3, search=["lr", "dropout", "hidden_units"])
    result = tuner.work(study_id, ws)
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 3
    assert built == ["mobilenet_v1_0.25"]  # once per study process, not once per trial
    rows = studies.show(study_id, ws)["trials"]
    table = {r["id"]: r for r in compare.table(ws)}
    for row in rows:
        run_dir = runs.run_path(row["run_id"], ws)
        for name in ("config.json", "status.json", "events.jsonl", "model.keras", "eval.json", "split.json",
                     f"checkpoints/{runs.EARLY_CHECKPOINT}"):
            assert (run_dir / name).is_file(), (row["number"], name)
        assert table[row["run_id"]]["test_accuracy"] == pytest.approx(row["test_accuracy"])

    # The last trial (its backbone and features came from the first): eval.json holds what its model.keras predicts.
    run_dir = runs.run_path(rows[-1]["run_id"], ws)
    ev = read_json(run_dir / "eval.json")
    model = modeling.load(run_dir / "model.keras")
    test = [tuple(item) for item in read_json(run_dir / "split.json")["test"]]
    config = runs.load_config(run_dir)
    root = datasets.dataset_path(tiny["id"], ws)
    probs = model.predict(tfdata.pipeline(root, test, config.image_size, tfdata.INFERENCE_BATCH, False, config.seed),
                          verbose=0)
    np.testing.assert_allclose(np.array([p["probs"] for p in ev["predictions"]]), probs, atol=1e-4)
    assert ev["ms_per_image"] > 0 and "backbone" in ev["latency_method"]

    # Predictions and Export open it like any run.
    image = next(tiny_source.glob("*/*.png"))
    answer = evaluation.predict(run_dir, [(image.name, image.read_bytes())])
    assert answer[0]["prediction"] in tiny["classes"]
    assert export.export(run_dir, "keras").is_file()
    assert export.export(run_dir, "savedmodel").is_file()  # checked against the Keras model on test images



def test_a_long_study_puts_a_bounded_number_of_heads_on_one_trunk(monkeypatch):
    monkeypatch.setattr(trials, "HEADS_PER_TRUNK", 2)
    monkeypatch.setattr(modeling, "classifier", lambda inputs, pooled, config, n: ("classifier", inputs, pooled, n))

    class Built:  # what keep() reads of the first trial's classifier
        input = "input"

        def get_layer(self, name):
            return SimpleNamespace(output=f"{name} output")

    shared, config = trials.Shared(), _config("d-0123abcd")
    assert shared.classifier(config, 3) is None  # nothing built yet
    shared.keep(config, Built(), "backbone")
    expected = (("classifier", "input", "pool output", 3), "backbone")
    assert shared.classifier(config, 3) == expected and shared.classifier(config, 3) == expected
    assert shared.classifier(config, 3) is None and not shared.trunks  # the third head: built whole again
    assert shared.classifier(config.with_changes(image_size=64), 3) is None  # another trunk altogether
