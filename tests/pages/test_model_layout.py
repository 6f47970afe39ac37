"""Model page, newcomer findings: preset and recommendation first, the rest under Customise; the preset
follows the recommendation; the settings survive a browser reload; numbers and names in words."""

import json

from core.spec import backbones, strategies
from core.spec.config import RunConfig
from core.store import drafts
from tests.pages.conftest import app_test, assert_clean


def built(at) -> RunConfig:
    return RunConfig.from_json(at.session_state["run_config"])


def test_preset_and_recommendation_come_first_and_the_rest_is_under_customise(ws, tiny_dataset):
    at = app_test("model").run()
    assert_clean(at)
    assert at.radio[0].key == "model.preset"  # the first control on the page
    assert at.radio[1].key == "model_ui.everyday"
    assert any(m.value.startswith("**Recommendation:**") for m in at.markdown)
    customise = next(e for e in at.expander if e.label.startswith("Customise"))
    inside = {w.key for kind in ("selectbox", "slider", "number_input", "checkbox", "select_slider")
              for w in getattr(customise, kind)}
    assert {"model.strategy", "model.backbone", "model.image_size", "model.epochs", "model.head.dropout",
            "model.augment.flip", "model.optimizer"} <= inside
    outside = [w.key for w in at.selectbox if w.key not in inside]
    assert "model.backbone" not in outside and "model.strategy" not in outside
    assert any(m.value.startswith("**You will train:**") and "MobileNet V2 (width 0.35)" in m.value for m in at.markdown)


def test_use_this_recommendation_moves_the_preset_and_the_saved_config(ws, tiny_dataset):
    at = app_test("model").run()
    at.radio(key="model_ui.everyday").set_value("no").run()
    at.button(key="model_ui.use_recommendation").click().run()
    assert_clean(at)
    rec = strategies.recommend(tiny_dataset["counts"], False)
    assert at.radio(key="model.preset").value == "recommended"
    config = built(at)
    assert config.preset == "recommended"
    assert (config.strategy, config.backbone, config.image_size) == (rec.strategy, rec.backbone, rec.image_size)
    assert json.loads(at.json[0].value)["preset"] == "recommended"
    # Choosing the preset from the radio gives the same settings; another preset leaves it.
    at.radio(key="model.preset").set_value("balanced").run()
    assert built(at).preset == "balanced"
    at.radio(key="model.preset").set_value("recommended").run()
    assert built(at) == config


def test_settings_survive_a_browser_reload(ws, tiny_dataset):
    at = app_test("model").run()
    at.radio(key="model.preset").set_value("balanced").run()
    at.number_input(key="model.epochs").set_value(7).run()
    at.radio(key="model_ui.tier").set_value("fast").run()
    saved = built(at)
    assert drafts.load(ws, "model")["config"] == saved.to_json()
    # A reload is a new browser session: empty session state, same workspace.
    again = app_test("model").run()
    assert_clean(again)
    assert built(again) == saved
    assert again.radio(key="model.preset").value == "balanced"
    assert again.number_input(key="model.epochs").value == 7
    assert again.radio(key="model_ui.tier").value == "fast"
    # The Train page, opened first after the reload, uses them too.
    train = app_test("train").run()
    assert any("your settings from the Model page" in c.value for c in train.caption)
    assert any(f"up to {saved.epochs}" in m.value for m in train.markdown)


def test_numbers_and_names_in_words(ws, tiny_dataset):
    at = app_test("model").run()
    spec = backbones.get("mobilenet_v2_0.35")
    table = next(d.value for d in at.dataframe if "backbone" in d.value.columns)
    assert not {"id", "family", "GFLOPs"} & set(table.columns)
    assert "billion operations per image at 128 px" in table.columns
    # The caption counts operations at the chosen size, not at the pretrained 224 px.
    caption = next(c.value for c in at.caption if "billion operations per image" in c.value)
    assert "at 128 px" in caption and f"{spec.gflops * (128 / 224) ** 2:.2g}" in caption
    # One parameter count for the backbone, in the dropdown and in the summary.
    option = at.selectbox(key="model.backbone").format_func("mobilenet_v2_0.35")
    assert f"{spec.base_params_m:g} million parameters" in option
    assert any(f"{spec.base_params_m:g} million parameters" in c.value for c in at.caption)
    # The note on a frozen backbone says which phase it is about when later phases retrain it.
    at.selectbox(key="model.strategy").set_value("fine_tune").run()
    note = strategies.speed_note(built(at))
    assert note.startswith("While the new classifier trains") and "Later phases retrain" in note
    assert any(c.value == note for c in at.caption)


def test_before_start_the_pages_say_what_trains_without_weights(ws, tiny_dataset, tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()  # a writable, empty home: no cached weights at all
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    at = app_test("model").run()
    assert_clean(at)
    assert any("small network learns from scratch" in w.value and "lower accuracy" in w.value for w in at.warning)
    train = app_test("train").run()
    assert any("small network learns from scratch" in w.value for w in train.warning)
    # With the quick preset's weights on this computer, nothing needs saying.
    spec = backbones.get("mobilenet_v2_0.35")
    models = backbones.keras_models_dir()
    models.mkdir(parents=True, exist_ok=True)
    (models / spec.weights_candidates(128)[0].name).write_bytes(b"weights")
    again = app_test("model").run()
    assert not any("scratch" in w.value for w in again.warning)
    assert any("already on this computer" in c.value for c in again.caption)
    # Another backbone without weights: the one whose weights are here is named as the offline stand-in.
    again.selectbox(key="model.backbone").set_value("efficientnet_b0").run()
    # (Tests run offline, TL_OFFLINE=1: the sentence says so and never promises a download beside it.)
    stand_in = [i.value for i in again.info if "MobileNet V2 (width 0.35), whose weights are here" in i.value]
    assert stand_in and "trained instead" in stand_in[0] and "downloaded when training starts" not in stand_in[0]


def test_the_train_page_names_the_backbone_the_run_really_trains(ws, tiny_dataset, make_run):
    # config.json holds what was trained (rewritten on a fallback), whatever the Model page had asked for.
    run = make_run(dataset_id=tiny_dataset["id"], backbone="mobilenet_v1_0.25", image_size=128)
    at = app_test("train")
    at.session_state["run_id"] = run.name
    at.run()
    assert_clean(at)
    assert any("Trains **MobileNet V1 (width 0.25)**" in m.value for m in at.markdown)


def test_the_train_page_eta_does_not_promise_later_phases_too_early(ws, tiny_dataset, make_run):
    import os
    import time

    events = [
        {"type": "phase_start", "phase": "head", "index": 1, "phases": 2, "epochs": 2, "steps": 5,
         "trainable_params": 10},
        {"type": "epoch_end", "phase": "head", "epoch": 1, "epochs": 2, "seconds": 1.0,
         "metrics": {"loss": 0.9, "accuracy": 0.6, "val_loss": 0.8, "val_accuracy": 0.7}},
    ]
    run = make_run("running", dataset_id=tiny_dataset["id"], events=events, strategy="fine_tune", epochs=2,
                   fine_tune_epochs=9, status={"pid": os.getpid(), "created": time.time()})
    at = app_test("train")
    at.session_state["run_id"] = run.name
    at.run()
    assert_clean(at)
    overall = at.progress[0]
    assert "9 epochs of later phases" in overall.proto.text and "timed once they start" in overall.proto.text


def test_phases_in_words_on_charts_and_in_the_log():
    from pages import _charts as charts

    assert charts.phase_short("fine_tune") == "fine-tuning" and charts.phase_short("unfreeze_2") == "top 2 groups open"
    history = [{"phase": "head", "loss": 1.0}, {"phase": "fine_tune", "loss": 0.5}]
    marks = [a["text"] for a in charts.training_curves(history).to_dict()["layout"]["annotations"]]
    assert marks == ["fine-tuning"]
