"""`bench train`: our trainer against the textbook transfer-learning recipe, same data, one run.

Data: ../shared/datasets/flowers, 300 images per class, imported once. Model: mobilenet_v2_1.0
with random weights (the timing ratio does not depend on the weights' values, and these need no
download), 224 px, 10 epochs, no augmentation, the same head (avg pool, dropout 0.2, softmax).

- textbook: the keras-io / TensorFlow-tutorial model, frozen base inside model.fit, on the same
  split and the same tf.data pipeline, as its own script;
- ours: `python -m core train` (features once, then the head; a cold cache).
Both run as separate processes one after the other, so their ratio is measured on one machine
in one run. Also: images/s of our feature pass against the backbone on in-memory tensors, and
the peak memory of `python -m core train` on all 3,000 flowers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.data import importer, splits
from core.errors import TransferLabError
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, runs

PROJECT = Path(__file__).resolve().parents[2]
FLOWERS = PROJECT.parent / "shared" / "datasets" / "flowers"
PER_CLASS, IMAGE_SIZE, EPOCHS, BACKBONE = 300, 224, 10, "mobilenet_v2_1.0"

_TEXTBOOK = '''
import json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
import tf_keras as keras

spec = json.load(open(sys.argv[1]))
size, batch = spec["image_size"], spec["batch_size"]

def pipeline(items, shuffle):
    paths = [spec["root"] + "/" + rel for rel, _ in items]
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant([l for _, l in items], dtype=tf.int32)))
    if shuffle:
        ds = ds.shuffle(len(items), seed=spec["seed"], reshuffle_each_iteration=True)
    def load(path, label):
        img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(tf.cast(img, tf.float32), (size, size)), label
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE)

keras.utils.set_random_seed(spec["seed"])
train, val = pipeline(spec["train"], True), pipeline(spec["val"], False)
base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None)
base.trainable = False
inputs = keras.Input((size, size, 3))
x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
x = base(x, training=False)
x = keras.layers.GlobalAveragePooling2D()(x)
x = keras.layers.Dropout(0.2)(x)
outputs = keras.layers.Dense(spec["classes"], activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
started = time.perf_counter()
model.fit(train, validation_data=val, epochs=spec["epochs"], verbose=0)
print(json.dumps({"fit_seconds": round(time.perf_counter() - started, 2)}))
'''

_THROUGHPUT = '''
import json, sys, time
import numpy as np
from pathlib import Path
import core
from core.data import tfdata
from core.data.images import load_image_array
from core.engine import features, modeling
from core.spec.config import RunConfig
cfg = RunConfig.from_json(open(sys.argv[1]).read())
root, items = Path(sys.argv[2]), json.load(open(sys.argv[3]))
model, base = modeling.build(cfg, 5)
extractor = features.feature_extractor(model, base, augmented=False)
extractor.predict(np.zeros((cfg.batch_size, cfg.image_size, cfg.image_size, 3), np.float32), verbose=0)  # warm up
started = time.perf_counter()
extractor.predict(tfdata.pipeline(root, items, cfg.image_size, cfg.batch_size, False, 0), verbose=0)
streamed = len(items) / (time.perf_counter() - started)
tensors = np.stack([load_image_array((root / rel).read_bytes(), cfg.image_size) for rel, _ in items[:256]])
started = time.perf_counter()
extractor.predict(tensors, batch_size=cfg.batch_size, verbose=0)
in_memory = len(tensors) / (time.perf_counter() - started)
print(json.dumps({"streamed_images_per_second": round(streamed, 1), "in_memory_images_per_second": round(in_memory, 1)}))
'''

_PEAK_RSS = "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); " \
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)"


def _subset(dest: Path, per_class: int | None) -> Path:
    for folder in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        (dest / folder.name).mkdir(parents=True)
        photos = sorted(folder.glob("*.jpg"))
        for photo in photos[:per_class] if per_class else photos:
            os.link(photo, dest / folder.name / photo.name) if _same_fs(photo, dest) else dest.joinpath(folder.name, photo.name).write_bytes(photo.read_bytes())
    return dest


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def _run(cmd: list[str], env: dict[str, str]) -> tuple[str, float]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise TransferLabError(f"A benchmark step failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout, wall


def run() -> dict[str, Any]:
    """Run the training benchmark and return its figures."""
    if not FLOWERS.is_dir():
        raise TransferLabError(f"The train benchmark needs the flower photos in {FLOWERS}.")
    with tempfile.TemporaryDirectory(prefix="tl-bench-train-") as tmp:
        tmp_path = Path(tmp)
        ws = tmp_path / "workspace"
        env = {**os.environ, "TL_WORKSPACE": str(ws), "TL_OFFLINE": "1", "HOME": str(tmp_path)}
        info = importer.import_path(_subset(tmp_path / "flowers300", PER_CLASS), ws, name="flowers300")
        cfg = RunConfig(
            dataset_id=info["id"], backbone=BACKBONE, weights="none", image_size=IMAGE_SIZE, epochs=EPOCHS,
            patience=0, augment=AugmentConfig(flip=False, rotate=False), batch_size=32,
        ).validate()
        cfg_path = tmp_path / "config.json"
        cfg_path.write_text(cfg.to_json())
        parts = splits.split(info, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        spec = {"root": str(datasets.dataset_path(info["id"], ws)), "train": parts["train"], "val": parts["val"],
                "image_size": IMAGE_SIZE, "batch_size": cfg.batch_size, "seed": cfg.seed, "epochs": EPOCHS,
                "classes": len(info["classes"])}
        spec_path = tmp_path / "textbook.json"
        spec_path.write_text(json.dumps(spec))
        script = tmp_path / "textbook.py"
        script.write_text(_TEXTBOOK)

        out, textbook_wall = _run([sys.executable, str(script), str(spec_path)], env)
        textbook_fit = json.loads(out)["fit_seconds"]
        out, ours_wall = _run([sys.executable, "-m", "core", "train", str(cfg_path), "--json", "--quiet"], env)
        ours = json.loads(out)
        items_path = tmp_path / "items.json"
        items_path.write_text(json.dumps(parts["train"]))
        out, _ = _run([sys.executable, "-c", _THROUGHPUT, str(cfg_path), spec["root"], str(items_path)], env)
        throughput = json.loads(out)

        all_info = importer.import_path(_subset(tmp_path / "flowers_all", None), ws, name="flowers_all")
        all_path = tmp_path / "config_all.json"
        all_path.write_text(cfg.with_changes(dataset_id=all_info["id"]).to_json())
        out, all_wall = _run([sys.executable, "-c", _PEAK_RSS, sys.executable, "-m", "core", "train", str(all_path),
                              "--json", "--quiet"], env)
        lines = out.strip().splitlines()
        all_result, peak_kb = json.loads("\n".join(lines[:-1])), int(lines[-1])
        run_dir = runs.run_path(ours["id"], ws)
        feature_pass = next(e for e in runs.read_events(run_dir) if e["type"] == "features")
    return {
        "benchmark": "train",
        "setup": f"{BACKBONE} random weights, {IMAGE_SIZE} px, {EPOCHS} epochs, no augmentation, "
                 f"{PER_CLASS} flowers per class ({sum(info['counts'].values())} images)",
        "textbook_fit_seconds": textbook_fit,
        "ours_train_seconds": ours["train_seconds"],
        "feature_pass_seconds": feature_pass["seconds"],
        "fit_speedup": round(textbook_fit / ours["train_seconds"], 2),
        "textbook_command_seconds": round(textbook_wall, 1),
        "ours_command_seconds": round(ours_wall, 1),
        "command_speedup": round(textbook_wall / ours_wall, 2),
        **throughput,
        "feature_pass_efficiency": round(throughput["streamed_images_per_second"] / throughput["in_memory_images_per_second"], 3),
        "all_flowers_images": sum(all_info["counts"].values()),
        "all_flowers_command_seconds": round(all_wall, 1),
        "all_flowers_train_seconds": all_result["train_seconds"],
        "all_flowers_peak_rss_mb": round(peak_kb / 1024, 1),
        "cpus": os.cpu_count(),
    }


def describe(result: dict[str, Any]) -> str:
    """The figures in a few lines."""
    r = result
    return (
        f"train benchmark ({r['setup']}, {r['cpus']} CPUs)\n"
        f"  textbook fit {r['textbook_fit_seconds']:.1f} s vs ours {r['ours_train_seconds']:.1f} s "
        f"(feature pass {r['feature_pass_seconds']:.1f} s): {r['fit_speedup']:.1f}x\n"
        f"  whole commands: textbook {r['textbook_command_seconds']:.0f} s vs ours {r['ours_command_seconds']:.0f} s: "
        f"{r['command_speedup']:.1f}x\n"
        f"  feature pass {r['streamed_images_per_second']:.0f} images/s streamed vs {r['in_memory_images_per_second']:.0f} "
        f"in memory: {r['feature_pass_efficiency']:.2f}\n"
        f"  all {r['all_flowers_images']} flowers: {r['all_flowers_command_seconds']:.0f} s, peak RSS {r['all_flowers_peak_rss_mb']:.0f} MB"
    )
