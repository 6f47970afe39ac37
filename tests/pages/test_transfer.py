"""Model and Compare pages: layer_transfer's transfer map and distill's teacher, as widgets and a table."""

import json

from core.spec.config import RunConfig
from tests.pages.conftest import app_test, assert_clean


def test_layer_transfer_shows_the_transfer_map_and_builds_the_config(ws, tiny_dataset):
    at = app_test("model").run()
    at.selectbox(key="model.strategy").set_value("layer_transfer").run()
    at.radio(key="model_ui.transfer.kind").set_value("backbone").run()
    assert "no finished run" not in " ".join(w.value for w in at.warning)
    at.selectbox(key="model_ui.transfer.backbone").set_value("mobilenet_v1_0.25").run()
    at.button(key="model_ui.transfer.show").click().run(timeout=180)  # builds both networks
    assert "no layer in common" in at.warning[0].value and "distill" in at.warning[0].value
    assert "run_config" not in at.session_state
    at.selectbox(key="model_ui.transfer.backbone").set_value("mobilenet_v2_0.35").run()
    at.button(key="model_ui.transfer.show").click().run(timeout=180)
    assert_clean(at)
    assert any("100% of MobileNet V2 (width 0.35)'s weights come from" in i.value for i in at.info)
    config = RunConfig.from_json(at.session_state["run_config"])
    assert (config.strategy, config.source_backbone, config.source_run) == ("layer_transfer", "mobilenet_v2_0.35", "")


def test_distill_needs_a_teacher_on_the_same_classes(ws, tiny_dataset, make_run):
    at = app_test("model").run()
    at.selectbox(key="model.strategy").set_value("distill").run()
    assert "no teacher" in at.warning[0].value
    teacher = make_run(backbone="mobilenet_v2_0.35", dataset_id=tiny_dataset["id"])
    at = app_test("model").run()
    at.selectbox(key="model.strategy").set_value("distill").run()
    at.checkbox(key="model_ui.transfer.alone").check().run()
    at.slider(key="model_ui.transfer.temperature").set_value(3.0).run()
    assert_clean(at)
    config = RunConfig.from_json(at.session_state["run_config"])
    assert (config.source_run, config.temperature, config.distill_weight, config.compare_student_alone) == (
        teacher.name, 3.0, 0.7, True)


def test_compare_shows_teacher_student_alone_and_distilled(ws, make_run):
    run = make_run(backbone="small_cnn", weights="none", strategy="distill", source_run="20260101-120000-0123456789ab")
    rows = [{"role": role, "run": run.name, "label": "Small CNN", "test_accuracy": acc, "params": 1000,
             "size_mb": 0.5, "file_mb": 1.0, "ms_per_image": 1.5}
            for role, acc in (("teacher", 0.9), ("student_alone", 0.6), ("distilled", 0.8))]
    (run / "distill_report.json").write_text(json.dumps({"rows": rows, "verdict": "The distilled Small CNN wins.",
                                                         "teacher_run": "x", "temperature": 4.0, "distill_weight": 0.7}))
    at = app_test("compare").run()
    assert_clean(at)
    assert any("The distilled Small CNN wins." in m.value for m in at.markdown)
    table = [d for d in at.dataframe if "distilled student" in d.value.iloc[:, 0].tolist()]
    assert table and table[0].value["test accuracy"].tolist() == [0.9, 0.6, 0.8]


def test_a_layer_transfer_without_its_weights_offline_waits_for_an_explicit_choice(ws, tiny, make_run,
                                                                                  monkeypatch):
    # Issue 28, item 3: offline, MobileNet V2 0.5 has no weights here; the page must not promise a fallback.
    from core.service import jobs

    source = make_run("done", dataset_id=tiny["id"], backbone="mobilenet_v1_0.25")
    config = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v2_0.5", strategy="layer_transfer",
                       source_run=source.name, image_size=128)
    submitted = []
    monkeypatch.setattr(jobs, "submit", lambda c, ws_: submitted.append(c) or source.name)
    at = app_test("train")
    at.session_state["run_config"] = config.to_json()
    at.run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "would start from random weights where nothing is copied" in warning
    assert "is trained instead" not in " ".join(i.value for i in at.info) + warning
    assert at.button(key="train.start").disabled
    at.checkbox(key="train.random_ok").check().run()
    at.button(key="train.start").click().run()
    assert [c.weights for c in submitted] == ["none"]  # the explicit choice, written into the run's settings


def test_jobs_and_the_trainer_refuse_a_layer_transfer_without_its_weights(ws, tiny_dataset):
    import pytest

    from core.engine import transfer
    from core.errors import WeightsUnavailable
    from core.service import jobs

    config = RunConfig(dataset_id=tiny_dataset["id"], backbone="mobilenet_v2_0.5", strategy="layer_transfer",
                       source_backbone="mobilenet_v2_0.35", image_size=128)
    with pytest.raises(WeightsUnavailable, match="would start from random weights"):
        jobs.submit(config, ws)
    with pytest.raises(WeightsUnavailable, match="--weights none"):
        transfer.keep_backbone(config)
    assert transfer.offline_refusal(config.with_changes(weights="none")) is None
