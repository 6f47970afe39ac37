"""Exports: each format loads back and reproduces the trained model; TFLite variants are measured honestly.

One small network is trained once for the module on a colour dataset it learns in seconds, so
its predictions are confident and a quantization error would show as a changed answer.
"""

from __future__ import annotations

import dataclasses
import json
import py_compile
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import cli
from core.data import importer, tfdata
from core.engine import layers, modeling, training
from core.errors import RunStateError
from core.ship import export
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, files, runs

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run of a small CNN (augmentation layers included) on 3 colour classes x 14 images."""
    src = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (src / name).mkdir()
        for i in range(14):
            pixels = np.clip(np.array(colour) + rng.normal(0, 35, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(src / name / f"{i}.png")
    ws = tmp_path_factory.mktemp("workspace")
    info = importer.import_path(src, ws, name="colours")
    cfg = RunConfig(
        dataset_id=info["id"], backbone="small_cnn", weights="none", strategy="from_scratch", image_size=32,
        epochs=6, learning_rate=3e-3, batch_size=8, patience=0, augment=AugmentConfig(flip=True, rotate=True),
    ).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    return run_dir


def _all_images(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every image of the run's dataset (train, val and test), as the model takes them."""
    cfg = runs.load_config(run_dir)
    split = files.read_json(run_dir / "split.json")
    items = [tuple(i) for part in ("train", "val", "test") for i in split[part]]
    ds = tfdata.pipeline(datasets.dataset_path(cfg.dataset_id, run_dir.parent.parent), items, cfg.image_size, 64,
                           False, 0)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def reference(trained) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All images, their labels, and the Keras model's probabilities for them."""

    images, labels = _all_images(trained)
    return images, labels, modeling.load(trained / "model.keras").predict(images, verbose=0)


def test_tflite_variants_reproduce_the_keras_model(trained, reference):
    images, labels, probs = reference
    assert (probs.argmax(1) == labels).mean() >= 0.9  # a confident model: changed answers would show
    out = {f: export.tflite_predict(export.export(trained, f), images) for f in export.TFLITE_IDS}
    assert np.abs(out["tflite"] - probs).max() < 1e-5
    assert np.abs(out["tflite-fp16"] - probs).max() < 5e-3
    for f in ("tflite-dynamic", "tflite-int8"):
        assert (out[f].argmax(1) == probs.argmax(1)).mean() >= 0.95, f
    sizes = {f: export.existing(trained, f).stat().st_size for f in export.TFLITE_IDS}
    assert sizes["tflite-fp16"] < 0.6 * sizes["tflite"]
    assert sizes["tflite-int8"] < 0.3 * sizes["tflite"] and sizes["tflite-dynamic"] < 0.3 * sizes["tflite"]


def test_report_measures_every_variant_on_the_test_split_and_is_cached(trained, monkeypatch):
    report = export.report(trained)
    n_test = len(files.read_json(trained / "split.json")["test"])
    assert report["n"] == n_test and list(report["variants"]) == list(export.TFLITE_IDS)
    rows = report["variants"]
    assert rows["tflite"]["change_points"] == 0 and rows["tflite"]["size_vs_float32"] == 1
    assert rows["tflite"]["agreement"] == 1 and rows["tflite"]["max_abs_diff"] < 1e-5
    assert rows["tflite-int8"]["input_type"] == "uint8" and rows["tflite"]["input_type"] == "float32"
    assert rows["tflite-int8"]["agreement"] >= 0.95
    for row in rows.values():
        assert row["bytes"] == (trained / "exports" / row["file"]).stat().st_size
        assert row["ms_per_image"] > 0
        assert row["change_points"] == pytest.approx(100 * (row["accuracy"] - rows["tflite"]["accuracy"]), abs=0.01)
    assert json.loads((trained / "exports" / "report.json").read_text())["variants"].keys() == rows.keys()

    def no_measuring(*args):
        raise AssertionError("measured again although nothing changed")

    monkeypatch.setattr(export, "_measure", no_measuring)
    assert export.report(trained)["variants"]["tflite-int8"]["accuracy"] == rows["tflite-int8"]["accuracy"]


def test_exports_are_made_once_and_reused(trained):
    first = export.export(trained, "labels")
    stamp = first.stat().st_mtime_ns
    assert export.export(trained, "labels") == first and first.stat().st_mtime_ns == stamp
    assert first.parent == trained / "exports"


def test_keras_and_savedmodel_exports_load_back_and_agree(trained, reference, tmp_path):
    import tensorflow as tf


    images, _, probs = reference
    keras_file = export.export(trained, "keras")
    assert np.abs(modeling.load(keras_file).predict(images, verbose=0) - probs).max() == 0
    with zipfile.ZipFile(export.export(trained, "savedmodel")) as zf:
        zf.extractall(tmp_path)
    assert (tmp_path / "labels.txt").read_text() == export.labels_text(trained)
    serve = tf.saved_model.load(str(tmp_path / "savedmodel")).signatures["serving_default"]
    assert np.abs(serve(image=tf.constant(images))["probabilities"].numpy() - probs).max() < 1e-5


def test_labels_follow_the_order_of_the_model_outputs(trained, reference):
    _, _, probs = reference
    lines = export.export(trained, "labels").read_text().splitlines()
    info = datasets.load_dataset(runs.load_config(trained).dataset_id, trained.parent.parent)
    assert lines == info["classes"] and probs.shape[1] == len(lines)
    # Line i names the folder of the images the model answers i for.
    split = files.read_json(trained / "split.json")
    folders = [rel.split("/")[0] for part in ("train", "val", "test") for rel, _ in split[part]]
    answered = [info["class_dirs"][lines[answer]] for answer in probs.argmax(1)]
    assert np.mean([a == f for a, f in zip(answered, folders)]) >= 0.9


def test_model_card_names_every_metric_in_eval_json(trained):
    card = export.export(trained, "card").read_text()
    evaluation = files.read_json(trained / "eval.json")
    for key in set(evaluation) - {"split", "n", "classes", "predictions"} - {k for k in evaluation if k.endswith("_note")}:
        assert f"`{key}`" in card, key
    for sub in evaluation["macro"]:
        assert f"`macro` {sub}" in card
    assert f"{evaluation['accuracy']:.4g}" in card
    for heading in ("## Data", "## Training configuration", "## Metrics", "## Intended use", "## Limitations"):
        assert heading in card
    assert "small_cnn" in card and all(name in card for name in COLOURS)


def test_training_code_is_a_standalone_script_that_trains_on_the_runs_split(trained, tmp_path):
    with zipfile.ZipFile(export.export(trained, "code")) as zf:
        assert sorted(zf.namelist()) == ["README.md", "config.json", "labels.txt", "split.json", "train.py"]
        zf.extractall(tmp_path)
    script = (tmp_path / "train.py").read_text()
    py_compile.compile(str(tmp_path / "train.py"), doraise=True)
    assert "from core" not in script and "import core" not in script
    cfg = runs.load_config(trained)
    for text in ("IMAGE_SIZE = 32", "BATCH_SIZE = 8", "SEED = 42", "PATIENCE = 0", "Phase('scratch', 6, 0.003, 'all'",
                 "def small_cnn(", f"CLASSES = {export.classes(trained)!r}", "keras.optimizers.Adam("):
        assert text in script, text
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(cfg.to_json())
    # It really trains, on a copy of the images with the run's split.json beside them.
    data = tmp_path / "data"
    shutil.copytree(datasets.dataset_path(cfg.dataset_id, trained.parent.parent), data)
    shutil.copy(tmp_path / "split.json", data / "split.json")
    proc = subprocess.run([sys.executable, str(tmp_path / "train.py"), str(data), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    split = files.read_json(trained / "split.json")
    assert f"{len(split['train'])} training, {len(split['val'])} validation, {len(split['test'])} test images" in proc.stdout
    assert "test accuracy" in proc.stdout and (tmp_path / "out" / "model.keras").is_file()
    assert (tmp_path / "out" / "labels.txt").read_text() == export.labels_text(trained)


def test_caffe_preprocessing_converts_to_float_and_full_integer(tmp_path):
    """ResNet-50 models carry TransferLab's CaffePreprocess layer: the converter must handle it."""
    import tensorflow as tf
    import tf_keras as keras

    CaffePreprocess = layers.get("CaffePreprocess")

    # Class scores read straight from the preprocessed channels: a wrong channel order or mean shows.
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(CaffePreprocess()(inputs))
    scores = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.Identity(gain=0.05))(x)
    model = keras.Model(inputs, scores)
    module = export.serving_module(model, 16)
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    rng = np.random.default_rng(1)
    colours = rng.uniform(0, 255, (40, 1, 1, 3))
    images = np.clip(colours + rng.normal(0, 10, (40, 16, 16, 3)), 0, 255).astype(np.float32)
    expected = model.predict(images, verbose=0)
    assert expected.max(1).mean() < 0.95  # informative scores, not one saturated class
    for name, variant in (("f32", export.TFLiteVariant()), ("int8", export.TFLiteVariant(optimize=True, integer=True))):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(export.convert_tflite(tmp_path / "sm", variant, lambda: ([img[None]] for img in images)))
        out = export.tflite_predict(path, images)
        if name == "f32":
            assert np.abs(out - expected).max() < 1e-5
        assert (out.argmax(1) == expected.argmax(1)).mean() >= 0.95, name


def test_failed_export_leaves_no_file(trained, monkeypatch):
    def broken(run_dir, target, fmt):
        target.write_text("half")
        raise export.ExportError("Converting failed.")

    monkeypatch.setitem(export.FORMATS, "card", dataclasses.replace(export.FORMATS["card"], filename="card2.md", make=broken))
    with pytest.raises(export.ExportError):
        export.export(trained, "card")
    assert not [p for p in (trained / "exports").iterdir() if p.name.startswith(".") or p.name == "card2.md"]


def test_missing_converter_package_says_how_to_add_it(trained, monkeypatch):
    onnx = dataclasses.replace(export.FORMATS["onnx"], module="no_such_module_for_tests")
    monkeypatch.setitem(export.FORMATS, "onnx", onnx)
    with pytest.raises(export.ExportError, match="pip install tf2onnx"):
        export.export(trained, "onnx")


def test_unfinished_run_and_unknown_format_are_refused(trained, tmp_path):
    run_dir = runs.create_run(runs.load_config(trained), trained.parent.parent)
    with pytest.raises(RunStateError, match="no finished model"):
        export.export(run_dir, "keras")
    with pytest.raises(export.ExportError, match="allowed formats: keras, savedmodel"):
        export.get("pickle")


def test_cli_export_copies_the_file_and_prints_the_check(trained, tmp_path, capsys):
    ws = trained.parent.parent
    code = cli.main(["export", trained.name, "--format", "tflite-int8", "--out", str(tmp_path / "out"),
                     "--workspace", str(ws), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    copied = tmp_path / "out" / "model_int8.tflite"
    assert result["path"] == str(copied) and copied.read_bytes() == export.existing(trained, "tflite-int8").read_bytes()
    assert result["check"]["agreement"] >= 0.95 and result["check"]["input_type"] == "uint8"
    assert cli.main(["export", "20990101-000000-000000000000", "--format", "keras", "--workspace", str(ws)]) == 2
    assert "There is no run" in capsys.readouterr().err
