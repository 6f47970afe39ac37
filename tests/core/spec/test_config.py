import json

import pytest

from core.errors import ConfigError
from core.spec import backbones, strategies
from core.spec.config import AugmentConfig, HeadConfig, PRESETS, RunConfig, preset


def test_round_trip_is_exact():
    cfg = RunConfig(
        dataset_id="d-0123abcd", backbone="mobilenet_v1_0.25", image_size=160, learning_rate=3e-4,
        fine_tune_learning_rate=1.7e-5, head=HeadConfig(pooling="maxpool_flatten", dropout=0.35, hidden_units=64, l2=1e-4),
        augment=AugmentConfig(flip=False, zoom=True, brightness=True), val_fraction=0.1, seed=7,
        optimizer="adamw", schedule="cosine", label_smoothing=0.1, class_weights="none", mixed_precision=True,
        fine_tune_unit="groups",
    ).validate()
    again = RunConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.to_json() == cfg.to_json()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_configs(name):
    cfg = preset(name, "d-0123abcd")
    assert cfg.preset == name
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_preset_overrides_nested_fields():
    cfg = preset("quick", "d-0123abcd", epochs=2, head={"dropout": 0.5})
    assert cfg.epochs == 2 and cfg.head.dropout == 0.5 and cfg.head.pooling == "avg"


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"backbone": "vgg99"}, "allowed values: mobilenet_v1_0.25"),
        ({"strategy": "magic"}, "allowed values: feature_extraction, fine_tune, gradual_unfreeze, from_scratch, "
                                "domain_weights, weight_init"),
        ({"weights": "openai"}, "allowed values: imagenet, none"),
        ({"optimizer": "lbfgs"}, "allowed values: adam, adamw, sgd, rmsprop"),
        ({"head": HeadConfig(pooling="median")}, "allowed values: avg, max, maxpool_flatten, flatten"),
        ({"schedule": "step"}, "allowed values: constant, cosine, warmup_cosine, plateau"),
        ({"class_weights": "yes"}, "allowed values: auto, balanced, none"),
        ({"fine_tune_unit": "blocks"}, "allowed values: layers, groups"),
        ({"label_smoothing": 0.7}, "label_smoothing must be between 0 and 0.5"),
        ({"backbone": "inception_v3", "image_size": 64}, "between 75 and 600 for inception_v3"),
        ({"backbone": "hub:relative/folder"}, "must be a web address or an absolute folder path"),
        ({"strategy": "domain_weights", "weights": "run"}, "starts from an earlier run; choose one"),
        ({"strategy": "weight_init", "source_run": "20260101-000000-abcdefabcdef"}, "set weights to 'run'"),
        ({"strategy": "gradual_unfreeze", "fine_tune_epochs": 0}, "fine_tune_epochs of at least 1"),
        ({"image_size": 8}, "image_size must be between 32 and 600"),
        ({"backbone": "small_cnn", "weights": "none", "image_size": 300}, "between 32 and 256 for small_cnn"),
        ({"epochs": 0}, "epochs must be between 1 and 500"),
        ({"batch_size": 1000}, "batch_size must be between 1 and 512"),
        ({"head": HeadConfig(dropout=0.95)}, "head.dropout must be between 0 and 0.9"),
        ({"val_fraction": 0.4, "test_fraction": 0.4}, "at least 40% of the images"),
        ({"strategy": "from_scratch"}, "set weights to 'none'"),
        ({"backbone": "small_cnn"}, "allowed values: none"),
        ({"strategy": "fine_tune", "fine_tune_epochs": 0}, "fine_tune_epochs of at least 1"),
        ({"dataset_id": ""}, "no dataset"),
    ],
)
def test_bad_values_are_refused_with_the_allowed_ones(changes, expected):
    cfg = RunConfig(dataset_id="d-0123abcd").with_changes(**changes)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        cfg.validate()


def test_from_json_refuses_unknown_fields_and_wrong_types():
    good = json.loads(RunConfig(dataset_id="d-0123abcd").to_json())
    with pytest.raises(ConfigError, match="Unknown config field 'epoch'"):
        RunConfig.from_json(json.dumps({**good, "epoch": 3}))
    with pytest.raises(ConfigError, match="Unknown config field 'head.drop'"):
        RunConfig.from_json(json.dumps({**good, "head": {"drop": 0.1}}))
    with pytest.raises(ConfigError, match="'epochs' must be a whole number"):
        RunConfig.from_json(json.dumps({**good, "epochs": "5"}))
    with pytest.raises(ConfigError, match="'augment.flip' must be true or false"):
        RunConfig.from_json(json.dumps({**good, "augment": {"flip": 1}}))
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{nope")


def test_ints_in_json_become_floats_where_floats_are_declared():
    good = json.loads(RunConfig(dataset_id="d-0123abcd").to_json())
    cfg = RunConfig.from_json(json.dumps({**good, "learning_rate": 1}))
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)


def test_configs_written_before_the_new_fields_still_load():
    old = json.loads(RunConfig(dataset_id="d-0123abcd").to_json())
    for new_field in ("source_run", "fine_tune_unit", "schedule", "label_smoothing", "class_weights", "mixed_precision"):
        del old[new_field]
    cfg = RunConfig.from_json(json.dumps(old))
    assert (cfg.schedule, cfg.class_weights, cfg.label_smoothing, cfg.mixed_precision) == ("constant", "auto", 0.0, False)


def test_earlier_run_and_tf_hub_configs_validate():
    run = RunConfig(dataset_id="d-0123abcd", strategy="weight_init", weights="run", source_run="20260101-000000-abcdefabcdef")
    assert run.validate() is run  # an earlier run's weights, whatever the backbone's own options
    hub = RunConfig(dataset_id="d-0123abcd", backbone="hub:https://tfhub.dev/google/bit/m-r50x1/1", image_size=224)
    assert hub.validate().backbone.startswith("hub:https://")
    assert RunConfig.from_json(hub.to_json()) == hub


def test_registries_are_consistent():
    for spec in backbones.BACKBONES.values():
        assert spec.min_size <= spec.default_size <= spec.max_size
        if "imagenet" in spec.weights_options and not spec.hub_handle and not spec.package_file:  # TF Hub (YAMNet), a wheel
            assert spec.weights_candidates(spec.default_size), spec.id
    for strategy in strategies.STRATEGIES.values():
        assert strategy.sentence and strategy.use_when
        assert strategy.phases(RunConfig(dataset_id="x", fine_tune_epochs=2))


def test_a_source_run_must_be_a_run_id():
    with pytest.raises(ConfigError, match="is not a run id"):
        RunConfig(dataset_id="d-0123abcd", backbone="mobilenet_v1_0.25", strategy="domain_weights", weights="run",
                  source_run="../../etc").validate()
