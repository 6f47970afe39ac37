"""The strategies that start from an earlier run or adapt to another domain apply to sounds too: distillation (a
log-mel CNN teaches an ImageNet CNN on log-mel), domain weights, and domain-adversarial training (a quiet room's
clips labelled, a noisier set unlabelled) each train a sound run to the end; layer transfer between two unrelated
sound networks is refused with its sentence."""

from __future__ import annotations

import pytest

from core.data import sounds
from core.data.importer import import_path
from core.engine import training
from core.errors import TransferLabError
from core.spec.config import RunConfig
from core.store import runs


@pytest.fixture(scope="module")
def sound_sets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sound_sets")
    ws = tmp / "workspace"
    ws.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TL_WORKSPACE", str(ws))
        yield _sets(ws, tmp)


def _sets(ws, tmp):
    quiet = import_path(sounds.generate_sounds(tmp / "quiet", per_class=10, seed=1), ws, name="quiet")
    hall = import_path(sounds.generate_sounds(tmp / "hall", per_class=10, seed=2), ws, name="hall")
    base = dict(dataset_id=quiet["id"], image_size=32, epochs=1, batch_size=8, patience=0)
    cfg = RunConfig(**base, backbone="logmel_cnn", weights="none", strategy="from_scratch").validate()
    source = runs.create_run(cfg, ws)
    assert training.run(cfg, source)["state"] == "done"
    return ws, base, source.name, hall["id"]


def _train(ws, cfg: RunConfig) -> dict:
    cfg = cfg.validate()
    return training.run(cfg, runs.create_run(cfg, ws))


@pytest.mark.parametrize("extra", [
    dict(backbone="logmel_mobilenet_v1_0.25", weights="none", strategy="distill"),
    dict(backbone="logmel_cnn", weights="run", strategy="domain_weights"),
])
def test_strategies_from_an_earlier_sound_run_train(sound_sets, extra):
    ws, base, source, _ = sound_sets
    assert _train(ws, RunConfig(**base, **extra, source_run=source))["state"] == "done"


def test_domain_adversarial_training_adapts_a_sound_run_to_unlabelled_clips(sound_sets):
    ws, base, _, target = sound_sets
    cfg = RunConfig(**base, backbone="logmel_cnn", weights="none", strategy="domain_adversarial",
                    target_dataset_id=target)
    assert _train(ws, cfg)["state"] == "done"


def test_layer_transfer_between_unrelated_sound_networks_is_refused_with_a_sentence(sound_sets):
    ws, base, source, _ = sound_sets
    cfg = RunConfig(**base, backbone="logmel_mobilenet_v1_0.25", weights="none", strategy="layer_transfer",
                    source_run=source)
    with pytest.raises(TransferLabError, match="no layer in common"):
        _train(ws, cfg)
