"""Domain adaptation on the pages: the Model page's target settings reach the config; the Predictions
page shows the target domain's metrics; the Compare table has a target accuracy column."""

import json

from core.data import importer
from core.service import compare
from core.spec.config import RunConfig
from tests.pages.conftest import EVAL, app_test, assert_clean, image_bytes

TARGET = {"dataset_id": "field-0123abcd", "n": 10, "shared_classes": ["blue", "red"], "accuracy": 0.7,
          "macro": {"precision": 0.7, "recall": 0.7, "f1-score": 0.69}, "confusion_matrix": [[4, 1], [2, 3]]}


def test_an_adapting_strategy_asks_for_the_target_and_builds_it_into_the_config(ws, tiny_dataset, tmp_path):
    src = tmp_path / "field"
    for label, colour in (("red", (150, 60, 60)), ("blue", (60, 60, 150))):
        (src / label).mkdir(parents=True)
        for i in range(11):
            (src / label / f"{i}.png").write_bytes(image_bytes(colour))
    field = importer.import_path(src, ws, name="field")
    at = app_test("model")
    at.session_state["dataset_id"] = tiny_dataset["id"]  # the source; the newer dataset is the target
    at.run()
    at.selectbox(key="model.strategy").set_value("adaptive_layers").run()
    assert_clean(at)
    at.checkbox(key="model.compare_source_only").check().run()
    at.radio(key="model.adapt_loss").set_value("coral").run()
    config = RunConfig.from_json(at.session_state["run_config"])
    assert config.target_dataset_id == field["id"] and config.compare_source_only and config.adapt_loss == "coral"
    assert not [c for c in at.checkbox if c.key == "model.adapt_recolor"]  # DANN's setting

    at.selectbox(key="model.strategy").set_value("domain_adversarial").run()
    assert_clean(at)
    assert at.checkbox(key="model.adapt_recolor").value  # re-colouring first is DANN's default
    assert RunConfig.from_json(at.session_state["run_config"]).adapt_recolor
    at.checkbox(key="model.adapt_recolor").uncheck().run()
    assert not RunConfig.from_json(at.session_state["run_config"]).adapt_recolor


def test_predictions_and_compare_show_the_target_domain(ws, make_run):
    run_dir = make_run("done", strategy="adaptive_layers", target_dataset_id="field-0123abcd")
    (run_dir / "eval.json").write_text(json.dumps({**EVAL, "target": TARGET}))
    at = app_test("predictions").run()
    assert_clean(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Target accuracy"] == "70.0%" and shown["Source test accuracy"] == "90.0%"
    [row] = compare.table(ws)
    assert row["target_accuracy"] == 0.7
