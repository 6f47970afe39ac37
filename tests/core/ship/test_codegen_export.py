"""The code export is the Model page's generated script, runnable from the zip alone; the model card
says where the backbone's starting weights came from.

One tiny earlier run (MobileNet V1 0.25, random weights, 32 px, 1 epoch) is trained once for the
module: it is the config whose exported script really trains, and the source of the runs that
start from its weights. Those later runs are finished run folders made without training (the
code export and the card read only their config, split and status).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.data import importer
from core.engine import layers, modeling, training
from core.ship import card, codegen, export
from core.spec import backbones, strategies
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, files, runs

NO_AUG = AugmentConfig(flip=False, rotate=False)
HUB = "hub:https://tfhub.dev/google/bit/m-r50x1/1"


@pytest.fixture(scope="module")
def source(tmp_path_factory, tiny_source) -> Path:
    """A finished tiny run with its model.keras and early checkpoint, in a workspace of its own."""
    ws = tmp_path_factory.mktemp("codegen-ws")
    info = importer.import_path(tiny_source, ws, name="tiny")
    cfg = RunConfig(dataset_id=info["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=1,
                    batch_size=8, patience=0, augment=NO_AUG).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    return run_dir


def _finished(source: Path, **changes) -> Path:
    """A finished run folder of the source's dataset with these config changes (its model file is the source's)."""
    cfg = runs.load_config(source).with_changes(**changes).validate()
    run_dir = runs.create_run(cfg, source.parent.parent)
    for name in ("split.json", "model.keras"):
        shutil.copy(source / name, run_dir / name)
    runs.update_status(run_dir, "done", finished=time.time())
    return run_dir


def _unzip(run_dir: Path, where: Path) -> Path:
    with zipfile.ZipFile(export.export(run_dir, "code")) as zf:
        zf.extractall(where)
    return where


def _module(script: Path):
    """The exported train.py imported as a module (its main() runs only as a script)."""
    spec = importlib.util.spec_from_file_location(f"exported_{script.parent.name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model_page_script(run_dir: Path) -> str:
    """What the Model page shows for this run's config (pages/model.py's call)."""
    cfg = runs.load_config(run_dir)
    ws = run_dir.parent.parent
    folder = datasets.dataset_path(cfg.dataset_id, ws)
    return codegen.training_script(cfg, str(folder), classes=datasets.load_dataset(cfg.dataset_id, ws)["classes"], ws=ws)


def test_exported_script_trains_and_the_readme_says_how(source, tmp_path):
    out = _unzip(source, tmp_path / "code")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "labels.txt", "split.json", "train.py"]
    assert (out / "train.py").read_text() == _model_page_script(source)
    assert json.loads((out / "config.json").read_text()) == json.loads(runs.load_config(source).to_json())
    readme = (out / "README.md").read_text()
    info = datasets.load_dataset(runs.load_config(source).dataset_id, source.parent.parent)
    assert "pip install tensorflow tf_keras" in readme and "python train.py DATA_DIR OUT_DIR" in readme
    assert all(f"{info['class_dirs'][name]}/" in readme for name in info["classes"])
    # As the README says: the images with the run's split.json beside them.
    data = tmp_path / "data"
    shutil.copytree(datasets.dataset_path(info["id"], source.parent.parent), data)
    shutil.copy(out / "split.json", data / "split.json")
    proc = subprocess.run([sys.executable, "train.py", str(data), str(tmp_path / "trained")], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    split = files.read_json(source / "split.json")
    assert f"{len(split['train'])} training, {len(split['val'])} validation, {len(split['test'])} test" in proc.stdout
    assert "phase head" in proc.stdout and "test accuracy" in proc.stdout
    assert (tmp_path / "trained" / "model.keras").is_file()
    assert (tmp_path / "trained" / "labels.txt").read_text() == (out / "labels.txt").read_text()


def test_gradual_unfreeze_export_is_the_model_page_script(source, tmp_path):
    run_dir = _finished(source, strategy="gradual_unfreeze", fine_tune_epochs=1)
    out = _unzip(run_dir, tmp_path)
    script = (out / "train.py").read_text()
    compile(script, "train.py", "exec")
    assert script == _model_page_script(run_dir)
    phases = strategies.get("gradual_unfreeze").phases(runs.load_config(run_dir))
    groups = backbones.group_count("mobilenet_v1_0.25")
    assert len(phases) == groups + 1 and phases[-1].top_groups == groups  # the head, then one group at a time
    for p in phases:
        assert f"Phase({p.name!r}, {p.epochs}, {p.learning_rate!r}, {p.base_trainable!r}, {p.top_layers}, " \
               f"{p.top_groups}),  # {p.label}" in script
    assert "gradual unfreezing strategy" in (out / "README.md").read_text()


def _base_weights(model_path: Path) -> list[np.ndarray]:

    return modeling.load(model_path).get_layer(backbones.base_name(backbones.get("mobilenet_v1_0.25"))).get_weights()


@pytest.mark.parametrize("strategy, shipped", [("domain_weights", "model.keras"),
                                               ("weight_init", runs.EARLY_CHECKPOINT)])
def test_run_weights_travel_with_the_script_and_load(source, tmp_path, strategy, shipped):

    run_dir = _finished(source, strategy=strategy, weights="run", source_run=source.name)
    out = _unzip(run_dir, tmp_path)
    script = (out / "train.py").read_text()
    compile(script, "train.py", "exec")
    assert f"SOURCE_WEIGHTS = 'source_run/{shipped}'" in script
    # The same program as the Model page's, but for where the weights file lies.
    page = _model_page_script(run_dir).splitlines()
    assert [i for i, (a, b) in enumerate(zip(script.splitlines(), page)) if a != b] == \
        [i for i, line in enumerate(page) if line.startswith("SOURCE_WEIGHTS = ")]
    original = modeling.early_checkpoint_path(source) if strategy == "weight_init" else source / "model.keras"
    assert (out / "source_run" / shipped).read_bytes() == original.read_bytes()
    readme = (out / "README.md").read_text()
    assert source.name in readme and f"source_run/{shipped}" in readme
    # The script's own loader puts exactly the earlier run's backbone tensors into its backbone.
    module = _module(out / "train.py")
    _, base = module.build_model(3)
    before = [w.copy() for w in base.get_weights()]
    module.load_source_weights(base)
    if strategy == "domain_weights":
        expected = _base_weights(source / "model.keras")
    else:
        _, reference = modeling.build(runs.load_config(run_dir), 3)
        reference.load_weights(str(original))
        expected = reference.get_weights()
    assert len(expected) == len(base.get_weights())
    for got, want in zip(base.get_weights(), expected):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(before, expected))


def test_missing_source_weights_are_named_in_the_readme(source, tmp_path):
    run_dir = _finished(source, strategy="domain_weights", weights="run", source_run="20200101-000000-abcdefabcdef")
    out = _unzip(run_dir, tmp_path)
    assert not (out / "source_run").exists()
    readme = (out / "README.md").read_text()
    assert "runs/20200101-000000-abcdefabcdef/model.keras" in readme and "source_run/model.keras" in readme
    with pytest.raises(SystemExit, match=r"weights file .*source_run/model.keras is missing"):
        _module(out / "train.py").load_source_weights(None)


def test_densenet_export_uses_torch_preprocessing(source, tmp_path):
    """DenseNet expects Keras's "torch" preprocessing: 0-1, then standardised with ImageNet's mean and std."""
    import tf_keras as keras

    run_dir = _finished(source, backbone="densenet121", strategy="fine_tune", fine_tune_epochs=1)
    out = _unzip(run_dir, tmp_path)
    script = (out / "train.py").read_text()
    compile(script, "train.py", "exec")
    assert "layers.Normalization(mean=[123.675, 116.28, 103.53]" in script and "keras.applications.DenseNet121(" in script
    pre = _module(out / "train.py").backbone().get_layer("preprocess")
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    expected = keras.applications.densenet.preprocess_input(pixels.copy())
    np.testing.assert_allclose(pre(pixels).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_small_cnn_export_standardises_each_image_like_the_app(source, tmp_path):
    """The from-scratch fallback standardises each picture inside the model; the exported script builds the
    same layer, so its model takes raw pixels too and sees what TransferLab's does."""
    run_dir = _finished(source, backbone="small_cnn", strategy="from_scratch", image_size=64)
    out = _unzip(run_dir, tmp_path)
    script = (out / "train.py").read_text()
    compile(script, "train.py", "exec")
    assert 'PerImageStandardize(name="preprocess")' in script
    pre = _module(out / "train.py").backbone().get_layer("preprocess")
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    ours = layers.preprocessing_layer("per_image")(pixels).numpy()
    np.testing.assert_allclose(pre(pixels).numpy(), ours, rtol=1e-4, atol=1e-4)


def test_small_cnn_export_builds_the_residual_network_and_warm_up_schedule_like_the_app(source, tmp_path):
    """The from-scratch fallback's network (residual blocks) and its schedule (warm-up, then cosine decay) are
    what the exported script builds and trains with, layer for layer (issue 27)."""
    from core.engine import networks

    run_dir = _finished(source, backbone="small_cnn", strategy="from_scratch", image_size=64,
                        schedule="warmup_cosine", learning_rate=3e-3)
    out = _unzip(run_dir, tmp_path)
    script = (out / "train.py").read_text()
    assert 'SCHEDULE = \'warmup_cosine\'' in script and f"WARMUP_FRACTION = {modeling.WARMUP_FRACTION!r}" in script
    assert "warmup_target=rate, warmup_steps=warm" in script
    theirs = _module(out / "train.py").backbone()
    app = networks.build_base(backbones.get("small_cnn"), 64, "none")
    kinds = [type(x).__name__ for x in modeling.network(theirs).layers]
    assert kinds == [type(x).__name__ for x in modeling.network(app).layers]
    assert kinds.count("Add") == 4  # four residual blocks
    assert theirs.count_params() == app.count_params()


# ---------------------------------------------------------------- the model card


def _backbone_line(run_dir: Path) -> str:
    return next(line for line in card.model_card(run_dir).splitlines() if line.startswith("- Backbone:"))


def test_model_card_says_where_the_starting_weights_came_from(source):
    assert "pretrained on ImageNet" in _backbone_line(_finished(source, weights="imagenet"))
    scratch = _backbone_line(source)
    assert "trained from scratch" in scratch and "ImageNet" not in scratch
    line = _backbone_line(_finished(source, strategy="domain_weights", weights="run", source_run=source.name))
    assert f"started from run `{source.name}`'s weights (its trained backbone)" in line
    assert "MobileNet" in line and "\"tiny\"" in line and runs.load_config(source).dataset_id in line
    assert "no pretraining" not in line
    early = _backbone_line(_finished(source, strategy="weight_init", weights="run", source_run=source.name))
    assert "its backbone after its first epoch" in early
    gone = _backbone_line(_finished(source, strategy="domain_weights", weights="run",
                                    source_run="20200101-000000-abcdefabcdef"))
    assert "20200101-000000-abcdefabcdef" in gone and "no longer in this workspace" in gone
    hub = _finished(source, backbone=HUB, weights="imagenet", image_size=224)
    assert "TF Hub model `https://tfhub.dev/google/bit/m-r50x1/1`" in _backbone_line(hub)
    text = card.model_card(hub)
    assert "publisher of `https://tfhub.dev/google/bit/m-r50x1/1`" in text

