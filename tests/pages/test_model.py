"""Model: the RunConfig the page builds holds exactly the values its widgets show."""

import hashlib
import json

import pytest

from core.data import splits
from core.spec import backbones, strategies
from core.spec.backbones import BackboneSpec, WeightsFile
from core.spec.config import PRESETS, RunConfig, offline_kit, preset
from tests.core.engine.test_weights_download import PAYLOAD, server  # noqa: F401 - its loopback server fixture
from tests.pages.conftest import app_test, assert_clean, plotly_charts


def built(at) -> RunConfig:
    return RunConfig.from_json(at.session_state["run_config"])


def widget_values(at) -> dict:
    """Every settings widget of the page, by the RunConfig field it edits."""
    out = {}
    for widgets in (at.selectbox, at.slider, at.number_input, at.radio, at.select_slider, at.checkbox):
        for w in widgets:
            if w.key and w.key.startswith("model.") and w.key != "model.preset":
                out[w.key.removeprefix("model.")] = w.value
    return out


def field(config: RunConfig, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def assert_config_matches_widgets(at) -> RunConfig:
    config = built(at)
    shown = widget_values(at)
    assert len(shown) >= 20
    for name, value in shown.items():
        assert field(config, name) == pytest.approx(value), name
    assert config.preset == at.radio(key="model.preset").value
    return config


def test_no_dataset_shows_guidance(ws):
    at = app_test("model").run()
    assert_clean(at)
    assert "no dataset" in at.info[0].value.lower()
    assert "run_config" not in at.session_state


def test_default_is_the_quick_preset(ws, tiny_dataset):
    at = app_test("model").run()
    assert_clean(at)
    config = assert_config_matches_widgets(at)
    assert config == preset("quick", tiny_dataset["id"])
    assert at.json  # the exact settings are shown


def test_choosing_the_small_cnn_brings_its_from_scratch_recipe_as_the_config_command_does(ws, tiny_dataset, capsys):
    from core.cli import main

    at = app_test("model").run()
    at.selectbox(key="model.backbone").set_value("small_cnn").run()
    assert_clean(at)
    config = built(at)
    recipe = backbones.get("small_cnn").scratch_recipe
    assert (config.learning_rate, config.schedule) == (recipe["learning_rate"], recipe["schedule"])
    assert config.epochs >= recipe["epochs"] and config.image_size == backbones.get("small_cnn").default_size
    capsys.readouterr()
    assert main(["config", "--dataset", tiny_dataset["id"], "--preset", "quick", "--backbone", "small_cnn"]) in (0, None)
    cli = RunConfig.from_json(capsys.readouterr().out)
    same = ("learning_rate", "schedule", "epochs", "image_size", "batch_size", "patience", "weights")
    assert {f: getattr(config, f) for f in same} == {f: getattr(cli, f) for f in same}


def test_choosing_distillation_brings_the_students_schedule_as_the_config_command_does(ws, tiny_dataset, make_run,
                                                                                        capsys):
    from core.cli import main

    teacher = make_run(backbone="mobilenet_v2_0.35", dataset_id=tiny_dataset["id"])
    at = app_test("model").run()
    assert built(at).fine_tune_layers != 1000
    at.selectbox(key="model.strategy").set_value("distill").run()
    assert_clean(at)
    config = built(at)
    assert (config.fine_tune_epochs, config.fine_tune_layers, config.patience, config.augment.zoom) == (20, 1000, 0, True)
    assert at.number_input(key="model.fine_tune_epochs").value == 20  # shown, and the person may change it
    at.number_input(key="model.fine_tune_epochs").set_value(4).run()
    assert built(at).fine_tune_epochs == 4
    capsys.readouterr()
    assert main(["config", "--dataset", tiny_dataset["id"], "--strategy", "distill", "--source-run", teacher.name,
                 "--workspace", str(ws)]) in (0, None)
    cli = RunConfig.from_json(capsys.readouterr().out)
    same = ("fine_tune_layers", "fine_tune_unit", "patience", "augment", "epochs")
    assert {f: getattr(config, f) for f in same} == {f: getattr(cli, f) for f in same} and cli.fine_tune_epochs == 20


def test_changed_widgets_reach_the_config(ws, tiny_dataset):
    at = app_test("model").run()
    at.radio(key="model.preset").set_value("balanced").run()
    assert built(at).backbone == PRESETS["balanced"]["backbone"]
    at.selectbox(key="model.backbone").set_value("efficientnet_b0").run()
    at.selectbox(key="model.strategy").set_value("fine_tune").run()
    at.slider(key="model.image_size").set_value(192)
    at.number_input(key="model.epochs").set_value(7)
    at.select_slider(key="model.learning_rate").set_value(3e-4)
    at.select_slider(key="model.batch_size").set_value(16)
    at.number_input(key="model.fine_tune_epochs").set_value(4)
    at.number_input(key="model.fine_tune_layers").set_value(30)
    at.checkbox(key="model.augment.contrast").check()
    at.checkbox(key="model.augment.flip").uncheck()
    at.selectbox(key="model.head.pooling").set_value("max")
    at.slider(key="model.head.dropout").set_value(0.5)
    at.number_input(key="model.head.hidden_units").set_value(64)
    at.selectbox(key="model.optimizer").set_value("sgd")
    at.number_input(key="model.patience").set_value(0)
    at.selectbox(key="model.schedule").set_value("cosine")
    at.slider(key="model.label_smoothing").set_value(0.1)
    at.selectbox(key="model.class_weights").set_value("balanced")
    at.checkbox(key="model.mixed_precision").check()
    at.select_slider(key="model.head.l2").set_value(1e-4)
    at.run()
    assert_clean(at)
    config = assert_config_matches_widgets(at)
    assert (config.dataset_id, config.preset, config.backbone, config.strategy) == (
        tiny_dataset["id"], "balanced", "efficientnet_b0", "fine_tune")
    assert (config.image_size, config.epochs, config.learning_rate, config.batch_size) == (192, 7, 3e-4, 16)
    assert (config.fine_tune_epochs, config.fine_tune_layers) == (4, 30)
    assert config.augment.contrast and not config.augment.flip
    assert (config.head.pooling, config.head.dropout, config.head.hidden_units) == ("max", 0.5, 64)
    assert (config.optimizer, config.patience) == ("sgd", 0)
    assert (config.schedule, config.label_smoothing, config.class_weights, config.mixed_precision, config.head.l2) == (
        "cosine", 0.1, "balanced", True, 1e-4)


def test_a_preset_and_a_strategy_build_the_config_the_page_shows(ws, tiny_dataset):
    at = app_test("model").run()
    at.radio(key="model.preset").set_value("balanced").run()
    at.selectbox(key="model.strategy").set_value("gradual_unfreeze").run()
    assert_clean(at)
    config = assert_config_matches_widgets(at)
    assert config == preset("balanced", tiny_dataset["id"], strategy="gradual_unfreeze",
                            fine_tune_epochs=at.number_input(key="model.fine_tune_epochs").value)
    assert json.loads(at.json[0].value) == json.loads(config.to_json())  # the exact settings shown
    # The picture: one row per layer group (and the head), one column per phase.
    chart = json.loads(plotly_charts(at)[0].proto.spec)
    heatmap = chart["data"][0]
    groups = backbones.get(config.backbone).groups
    assert heatmap["y"] == ["head"] + [g["name"] for g in groups][::-1]
    assert len(heatmap["x"]) == len(strategies.get("gradual_unfreeze").phases(config)) == 1 + len(groups)
    assert at.number_input(key="model.fine_tune_epochs").label == "Epochs per step"


def test_the_recommendation_fills_in_the_settings(ws, tiny_dataset):
    at = app_test("model").run()
    at.radio(key="model_ui.everyday").set_value("no").run()
    rec = strategies.recommend(splits.train_counts(tiny_dataset), False)
    assert rec.reason in at.markdown[[m.value for m in at.markdown].index(f"**Recommendation:** {rec.reason}")].value
    at.button(key="model_ui.use_recommendation").click().run()
    assert_clean(at)
    config = assert_config_matches_widgets(at)
    assert (config.strategy, config.backbone, config.epochs) == (rec.strategy, rec.backbone, rec.epochs)


def test_tier_filter_narrows_the_backbones(ws, tiny_dataset):
    at = app_test("model").run()
    everything = len(at.selectbox(key="model.backbone").options)
    at.radio(key="model_ui.tier").set_value("accurate").run()
    assert_clean(at)
    shown = at.selectbox(key="model.backbone").options
    # An image dataset lists the image backbones only (the sound ones read spectrograms); the choice stays listed.
    assert len(backbones.for_kind("image")) == everything > len(shown) > 1
    assert any("ConvNeXt" in option for option in shown) and not any("V1 (width 0.25)" in o for o in shown)


def test_domain_weights_start_from_an_earlier_run(ws, tiny_dataset, make_run):
    at = app_test("model").run()
    at.selectbox(key="model.strategy").set_value("domain_weights").run()
    assert "no finished run" in at.warning[0].value
    assert "run_config" not in at.session_state
    earlier = make_run(backbone="resnet50", dataset_id=tiny_dataset["id"])
    at = app_test("model").run()
    at.selectbox(key="model.strategy").set_value("domain_weights").run()
    assert_clean(at)
    config = assert_config_matches_widgets(at)
    assert (config.source_run, config.backbone, config.weights) == (earlier.name, "resnet50", "run")
    assert at.selectbox(key="model.source_run").value == earlier.name


def test_a_tf_hub_backbone(ws, tiny_dataset):
    at = app_test("model").run()
    at.radio(key="model_ui.source").set_value("hub").run()
    assert_clean(at)
    assert built(at).backbone == backbones.hub_id(backbones.HUB_MODELS[0].handle)
    at.selectbox(key="model_ui.hub_choice").set_value("other").run()
    at.text_input(key="model_ui.hub_handle").set_value("https://tfhub.dev/google/bit/m-r50x1/1").run()
    assert_clean(at)
    assert built(at).backbone == "hub:https://tfhub.dev/google/bit/m-r50x1/1"


def test_show_me_the_code(ws, tiny_dataset):
    at = app_test("model").run()
    assert_clean(at)
    code = at.get("code")[0].value
    compile(code, "train.py", "exec")
    assert f"IMAGE_SIZE = {built(at).image_size}" in code and "def main()" in code


def test_preset_resets_the_settings(ws, tiny_dataset):
    at = app_test("model").run()
    at.number_input(key="model.epochs").set_value(3).run()
    at.radio(key="model.preset").set_value("best").run()
    assert_clean(at)
    assert assert_config_matches_widgets(at) == preset("best", tiny_dataset["id"])


def test_from_scratch_forces_random_weights_and_back(ws, tiny_dataset):
    at = app_test("model").run()
    at.selectbox(key="model.strategy").set_value("from_scratch").run()
    assert_clean(at)
    assert built(at).weights == "none"
    assert not [r for r in at.radio if r.key == "model.weights"]  # no choice offered
    at.selectbox(key="model.strategy").set_value("feature_extraction").run()
    assert built(at).weights == "imagenet"  # the earlier choice comes back


def test_small_cnn_allows_only_random_weights_and_its_sizes(ws, tiny_dataset):
    at = app_test("model").run()
    at.slider(key="model.image_size").set_value(320).run()
    at.selectbox(key="model.backbone").set_value("small_cnn").run()
    at.selectbox(key="model.strategy").set_value("from_scratch").run()
    assert_clean(at)
    config = assert_config_matches_widgets(at)
    spec = backbones.get("small_cnn")
    assert config.weights == "none"
    assert at.slider(key="model.image_size").max == spec.max_size
    assert config.image_size == spec.default_size  # not 320: its from-scratch recipe's size, as `config` gives


def test_fine_tuning_settings_appear_only_for_fine_tuning(ws, tiny_dataset):
    at = app_test("model").run()
    assert not [n for n in at.number_input if n.key == "model.fine_tune_epochs"]
    at.selectbox(key="model.strategy").set_value("fine_tune").run()
    assert_clean(at)
    assert at.number_input(key="model.fine_tune_epochs").value >= 1
    assert built(at).fine_tune_epochs == at.number_input(key="model.fine_tune_epochs").value


def test_refused_settings_show_a_sentence(ws, tiny_dataset):
    at = app_test("model").run()
    at.slider(key="model.val_fraction").set_value(0.4)
    at.slider(key="model.test_fraction").set_value(0.4)
    at.run()
    assert not at.exception
    assert "at least 40%" in at.error[0].value
    assert "run_config" not in at.session_state  # the Train page will not use stale settings


def test_summary_and_what_the_pretrained_model_sees_on_request(ws, tiny_dataset):
    at = app_test("model").run()
    at.selectbox(key="model.strategy").set_value("fine_tune").run()
    at.toggle(key="model_ui.count").set_value(True).run()
    assert_clean(at)
    phases = next(d.value for d in at.dataframe if "phase" in d.value.columns)
    assert list(phases["phase"]) == ["1. training the new classifier (backbone frozen)",
                                     "2. fine-tuning the top of the backbone"]  # words, not "2. fine_tune"
    assert 0 < phases["trainable parameters"][0] < phases["trainable parameters"][1]
    # Offline without the classifier file: said at once, no button that shows nothing (issue 28, item 9).
    assert not [b for b in at.button if b.key == "model_ui.sees"]
    said = " ".join(i.value for i in at.info)
    assert "classifier of MobileNet V2" in said and "cannot name what it sees here" in said and ".h5" not in said


def test_a_tf_hub_model_downloaded_into_the_workspace_counts_as_ready_on_the_page(ws, tiny_dataset, monkeypatch):
    # YAMNet fetched earlier by `weights download` or a run: the page looks in the workspace's hub cache, without
    # pointing the whole server process (TFHUB_CACHE_DIR) at one visitor's workspace.
    monkeypatch.delenv("TFHUB_CACHE_DIR", raising=False)
    folder = backbones.hub_module_dir(backbones.YAMNET, backbones.hub_cache_dir(ws))
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"a SavedModel")
    at = app_test("model").run()
    assert_clean(at)
    assert any(e.label == f"Get ready for a demo without internet (2 of {len(offline_kit())} backbones ready)"
               for e in at.expander)


def test_missing_weights_download_from_the_page(ws, tiny_dataset, monkeypatch, server):
    good = WeightsFile("x.h5", server + "/good", hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.delenv("TL_OFFLINE", raising=False)
    monkeypatch.setattr(BackboneSpec, "weights_candidates",
                        lambda self, size: [WeightsFile(f"{self.id}_{size}.h5", good.url, good.file_hash)])
    at = app_test("model")
    at.run()
    assert_clean(at)
    spec, size = backbones.get(built(at).backbone), built(at).image_size
    kit = [e.label for e in at.expander if e.label.startswith("Get ready for a demo without internet")]
    # WordLlama's table ships inside its wheel: the only backbone of the kit that is always here
    here = [b for b, s in offline_kit() if backbones.cached_weights(backbones.get(b), s)]
    assert here == ["wordllama"]
    assert kit == [f"Get ready for a demo without internet (1 of {len(offline_kit())} backbones ready)"]
    next(b for b in at.button if b.label.startswith(f"Download the weights of {spec.label} now")).click().run()
    assert_clean(at)
    assert backbones.cached_weights(spec, size).read_bytes() == PAYLOAD
    again = app_test("model").run()  # a fresh visit (AppTest cannot replay a selectbox whose labels changed)
    assert not any(b.label.startswith("Download the weights of") for b in again.button)  # ready now: no button
    assert any(e.label.startswith("Get ready for a demo without internet (2 of") for e in again.expander)
