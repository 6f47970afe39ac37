"""Real photos and genuine ImageNet weights from ../shared; skipped where ../shared is absent."""

import shutil

import pytest

from core.data import importer
from core.engine import training
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs
from tests.conftest import SHARED

FLOWERS = SHARED / "datasets" / "flowers"
WEIGHTS = SHARED / "keras-cache" / "models" / "mobilenet_2_5_224_tf_no_top.h5"

pytestmark = pytest.mark.skipif(
    not (FLOWERS.is_dir() and WEIGHTS.is_file()),
    reason="../shared/datasets/flowers and ../shared/keras-cache are not beside the project",
)


def test_mobilenet_v1_imagenet_on_40_flowers_per_class(ws, tmp_path, _isolated_home):
    models = _isolated_home / ".keras" / "models"
    models.mkdir(parents=True)
    shutil.copy(WEIGHTS, models / WEIGHTS.name)
    src = tmp_path / "flowers40"
    for folder in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        (src / folder.name).mkdir(parents=True)
        for photo in sorted(folder.glob("*.jpg"))[:40]:
            shutil.copy(photo, src / folder.name / photo.name)
    info = importer.import_path(src, ws, name="flowers40")
    assert info["counts"] == {c: 40 for c in info["classes"]} and len(info["classes"]) == 5
    cfg = RunConfig(
        dataset_id=info["id"], backbone="mobilenet_v1_0.25", weights="imagenet", image_size=224,
        epochs=15, learning_rate=1e-3, batch_size=16, patience=4, augment=AugmentConfig(flip=True, rotate=False),
        val_fraction=0.15, test_fraction=0.2,
    ).validate()
    run_dir = runs.create_run(cfg, ws)
    result = training.run(cfg, run_dir)
    assert runs.load_config(run_dir).backbone == "mobilenet_v1_0.25"  # no fallback: the weights were found
    assert not [e for e in runs.read_events(run_dir) if e["type"] == "notice"]
    assert result["state"] == "done"
    assert result["test_accuracy"] >= 0.7, result
