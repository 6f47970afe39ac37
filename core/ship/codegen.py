"""'Show me the code': a standalone tf_keras training script equivalent to a RunConfig.

The script needs only TensorFlow (with tf_keras; tensorflow-hub for a TF Hub backbone). The
functions that decide what trains (the layer groups found from the graph, what each phase
opens) are copied from core/engine/modeling.py's own source, so the script cannot drift from the
trainer. The source is read as text (ast), so writing a script does not import TensorFlow.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any

from core import settings
from core.data import sounds as data_sounds
from core.engine import (adaptation, distill, features, layers, methods, modeling, networks, plain, sounds,
                         transfer)
from core.errors import TransferLabError
from core.spec import backbones, strategies
from core.spec.config import RunConfig
from core.store import datasets, runs
from core.store.files import workspace

_HEAD = '''"""Train {label} on a folder of class folders with the "{strategy}" strategy.

Written by TransferLab; the same settings as its run config (config.json), as plain tf_keras.

Usage:  python train.py [DATA_DIR] [OUT_DIR]{target_arg}
  DATA_DIR  one folder per class, each holding that class's images (default: the folder below)
  OUT_DIR   where model.keras, labels.txt and the checkpoints go (default: ./trained){target_help}
Needs:  pip install tensorflow tf_keras{hub_pip}
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # the tf_keras (Keras 2) API, as TransferLab uses

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers
{hub_import}
'''

_BODY = '''

def list_images(data_dir):
    """The class names (CLASSES, else the sorted folder names) and every image as (relative path, class index)."""
    classes = CLASSES or sorted(p.name for p in data_dir.iterdir()
                                if p.is_dir() and not p.name.startswith(".") and p.name not in ("unlabeled", "docs"))
    folders = CLASS_DIRS or classes
    items = [(f"{folder}/{f.name}", index) for index, folder in enumerate(folders)
             for f in sorted((data_dir / folder).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return classes, items


def split_path(data_dir):
    """SPLIT_FILE (relative: next to this script), else a split.json next to the data."""
    if SPLIT_FILE:
        return Path(SPLIT_FILE) if Path(SPLIT_FILE).is_absolute() else Path(__file__).with_name(SPLIT_FILE)
    return data_dir / "split.json"


def split_images(data_dir, items):
    """Train/validation/test parts: SPLIT_FILE or a split.json next to the data, else a stratified split."""
    split_file = split_path(data_dir)
    if split_file.is_file():
        parts = json.loads(split_file.read_text())
        return {part: [tuple(item) for item in parts[part]] for part in ("train", "val", "test")}
    rng = np.random.default_rng(SEED)
    parts = {"train": [], "val": [], "test": []}
    for label in sorted({label for _, label in items}):
        files = [item for item in items if item[1] == label]
        files = [files[i] for i in rng.permutation(len(files))]
        n_test, n_val = max(1, round(len(files) * TEST_FRACTION)), max(1, round(len(files) * VAL_FRACTION))
        parts["test"] += files[:n_test]
        parts["val"] += files[n_test:n_test + n_val]
        parts["train"] += files[n_test + n_val:]
    return parts


def make_dataset(data_dir, items, shuffle):
    """(float32 0-255 images, labels) batches, streamed from disk."""
    paths = [str(data_dir / name) for name, _ in items]
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant([label for _, label in items], tf.int32)))
    if shuffle:
        ds = ds.shuffle(len(items), seed=SEED, reshuffle_each_iteration=True)

    def load(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), (IMAGE_SIZE, IMAGE_SIZE)), label

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)


def class_weights(labels):
    """Balanced class weights (rare classes count more), as CLASS_WEIGHTS asks."""
    present, counts = np.unique(labels, return_counts=True)
    if CLASS_WEIGHTS == "none" or (CLASS_WEIGHTS == "auto" and counts.max() / counts.min() <= 1.5):
        return None
    return {int(c): len(labels) / (len(present) * int(n)) for c, n in zip(present, counts)}


def build_model(num_classes):
    """Augmentation -> preprocessing + backbone -> new head; returns the model and the backbone."""
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = inputs
    steps = augmentation_layers()
    if steps:
        # Random changes for training images only; at prediction time they pass images through.
        x = keras.Sequential(steps, name="augmentation")(x)
    base = backbone()
    # Pretrained BatchNorm statistics stay in inference mode, even when layers are unfrozen for
    # fine-tuning, or the first updates wreck what was learned. From scratch, BatchNorm must learn.
    x = base(x, training=False) if PRETRAINED else base(x)
    x = pooling(len(base.output_shape))(x)
    reg = keras.regularizers.l2(L2) if L2 > 0 else None
    if HIDDEN_UNITS:
        x = layers.Dropout(DROPOUT, name="hidden_dropout")(x)
        x = layers.Dense(HIDDEN_UNITS, activation="relu", kernel_regularizer=reg, name="hidden")(x)
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg, dtype="float32",
                           name="predictions")(x)
    return keras.Model(inputs, outputs, name="transferlab_classifier"), base


def make_loss():
    if LABEL_SMOOTHING > 0:
        return SmoothedSparseCrossentropy(LABEL_SMOOTHING)
    return keras.losses.SparseCategoricalCrossentropy()


def main():
    data_dir = Path(sys.argv[1] if len(sys.argv) > 1 else DATA_DIR)
    out_dir = Path(sys.argv[2] if len(sys.argv) > 2 else "trained")
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(SEED)
    if MIXED_PRECISION and tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    classes, items = list_images(data_dir)
    parts = split_images(data_dir, items)
    print(f"{len(classes)} classes; {len(parts['train'])} training, {len(parts['val'])} validation, "
          f"{len(parts['test'])} test images")
    train_ds = make_dataset(data_dir, parts["train"], True)
    val_ds = make_dataset(data_dir, parts["val"], False)
    test_ds = make_dataset(data_dir, parts["test"], False)
    weights = class_weights(np.array([label for _, label in parts["train"]]))

    model, base = build_model(len(classes))
    load_source_weights(base)
    checkpoint = str(out_dir / "best.weights.h5")
    best_val_loss = None  # the best epoch over all phases is kept
    steps_per_epoch = math.ceil(len(parts["train"]) / BATCH_SIZE)
    for phase in PHASES:
        apply_phase(base, phase)  # recompiled after every change of what trains
        rate = phase.learning_rate
        if SCHEDULE == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=steps_per_epoch * phase.epochs)
        if SCHEDULE == "warmup_cosine":  # WARMUP_FRACTION of the steps climb from rate / 10, then to 0
            warm = int(steps_per_epoch * phase.epochs * WARMUP_FRACTION)
            rate = keras.optimizers.schedules.CosineDecay(rate / 10, decay_steps=steps_per_epoch * phase.epochs - warm,
                                                          warmup_target=rate, warmup_steps=warm)
        # The model itself, or the student inside a Distiller, or the classifier inside an AdaptationTrainer.
        trainer = make_trainer(model, phase, steps_per_epoch)
        trainer.compile(optimizer=make_optimizer(rate), loss=make_loss(), metrics=["accuracy"])
        callbacks = [keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True,
                                                     save_weights_only=True, initial_value_threshold=best_val_loss)]
        if PATIENCE:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE))
        if SCHEDULE == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3,
                                                               patience=max(1, PATIENCE // 2), min_lr=1e-7))
        trainable = sum(keras.backend.count_params(w) for w in model.trainable_weights)
        print(f"phase {phase.name}: {phase.epochs} epochs at learning rate {phase.learning_rate:g}, "
              f"{trainable:,} trainable parameters")
        history = trainer.fit(training_data(train_ds, data_dir), validation_data=val_ds, epochs=phase.epochs, class_weight=weights,
                            callbacks=callbacks, verbose=2)
        losses = [v for v in history.history.get("val_loss", []) if math.isfinite(v)]
        if losses:
            best_val_loss = min(losses + ([best_val_loss] if best_val_loss is not None else []))
    if Path(checkpoint).exists():
        trainer.load_weights(checkpoint)
    model.save(out_dir / "model.keras")
    (out_dir / "labels.txt").write_text("".join(f"{name}\\n" for name in classes))
    accuracy = trainer.evaluate(test_ds, verbose=0, return_dict=True)["accuracy"]
    print(f"test accuracy {accuracy:.3f} on {len(parts['test'])} images; model saved to {out_dir / 'model.keras'}")


if __name__ == "__main__":
    main()
'''


def _source(obj: Any) -> str:
    return inspect.getsource(obj).rstrip("\n")


@lru_cache(maxsize=4)
def _definitions(path: str) -> dict[str, str]:
    """Top-level functions, classes and assignments of a core module, by name, as source text (decorators
    included); also the classes a function defines (core.engine.layers makes its Keras classes lazily)."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            out[node.name] = "\n".join(lines[start - 1:node.end_lineno])
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = "\n".join(lines[node.lineno - 1:node.end_lineno])
        if isinstance(node, ast.FunctionDef):
            for inner in node.body:
                if isinstance(inner, ast.ClassDef):
                    start = min([d.lineno for d in inner.decorator_list] + [inner.lineno])
                    out.setdefault(inner.name, textwrap.dedent("\n".join(lines[start - 1:inner.end_lineno])))
    return out


def _preprocess_code(kind: str) -> str:
    codes = {
        "minus_one_to_one": 'layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")',
        "zero_to_one": 'layers.Rescaling(1.0 / 255.0, name="preprocess")',
        "caffe": 'CaffePreprocess(name="preprocess")',
        "per_image": 'PerImageStandardize(name="preprocess")',
        "torch": (f"layers.Normalization(mean={[round(255.0 * m, 4) for m in backbones.TORCH_MEAN]}, "
                  f"variance={[round((255.0 * s) ** 2, 4) for s in backbones.TORCH_STD]}, name=\"preprocess\")"),
        "none": 'layers.Identity(name="preprocess")',
    }
    return codes[kind]


def _augmentation_code(config: RunConfig) -> list[str]:
    a, seed = config.augment, config.seed
    steps = [
        (a.flip, f'layers.RandomFlip("horizontal", seed={seed})'),
        (a.rotate, f"layers.RandomRotation(0.1, seed={seed})"),
        (a.zoom, f"layers.RandomZoom(0.15, seed={seed})"),
        (a.translate, f"layers.RandomTranslation(0.1, 0.1, seed={seed})"),
        (a.contrast, f"layers.RandomContrast(0.2, seed={seed})"),
        (a.brightness, f"layers.RandomBrightness(0.2, value_range=(0, 255), seed={seed})"),
    ]
    return [f"        {code}," for on, code in steps if on]


def _network_code(spec: backbones.BackboneSpec) -> tuple[str, list[str]]:
    """The line that makes the bare network, and any definitions it needs."""
    if spec.hub_handle:
        return f'net = hub.KerasLayer({spec.hub_handle!r}, trainable=True, name="hub_model")', []
    module, attr = spec.constructor
    kwargs = "".join(f", {k}={v!r}" for k, v in spec.kwargs.items())
    shape = "input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), include_top=False"
    if module == "tf_keras.applications":
        # Keras downloads the ImageNet weights into ~/.keras/models on first use.
        return f"net = keras.applications.{attr}({shape}, weights=WEIGHTS{kwargs})", []
    from importlib import import_module

    return f"net = {attr}({shape}, weights=None{kwargs})", [_source(getattr(import_module(module), attr))]


def _source_loader(config: RunConfig, spec: backbones.BackboneSpec) -> list[str]:
    copies = methods.is_method(config, transfer.METHOD)  # layer transfer loads its source run's (or backbone's) layers
    how = strategies.get(config.strategy).source or ("model" if copies else None)
    lines = ["def load_source_weights(base):",
             '    """Start the backbone from an earlier run\'s weights, as the strategy asks."""']
    if how is None:
        return lines + ["    return  # this strategy starts from WEIGHTS"]
    lines += [
        "    # A relative SOURCE_WEIGHTS sits next to this script.",
        "    path = Path(SOURCE_WEIGHTS) if Path(SOURCE_WEIGHTS).is_absolute() else Path(__file__).parent / SOURCE_WEIGHTS",
        "    if not path.is_file():",
        '        sys.exit(f"The earlier run\'s weights file {path} is missing: copy it from that run\'s folder in the "',
        '                 "TransferLab workspace (runs/<run id>/) and set SOURCE_WEIGHTS to where it is.")',
    ]
    if how == "early":
        return lines + ["    base.load_weights(str(path))  # the earlier run's backbone after its first epoch"]
    custom = ', custom_objects={"KerasLayer": hub.KerasLayer}' if spec.hub_handle else ""
    if copies:
        return _layer_transfer_code(config)
    return lines + [
        "    # The earlier run's whole classifier; only its backbone is kept, the head is new.",
        f"    earlier = keras.models.load_model(path, compile=False{custom})",
        f"    base.set_weights(earlier.get_layer({backbones.base_name(spec)!r}).get_weights())",
    ]


def _layer_transfer_code(config: RunConfig) -> list[str]:
    """load_source_weights for layer_transfer: copy the layers the source shares with this backbone."""
    if config.source_run:
        source_spec = None
        make = ["    earlier = keras.models.load_model(path, compile=False)",
                "    return earlier.get_layer(SOURCE_BASE).layers[-1]  # the earlier run's trained network"]
    else:
        source_spec = backbones.get(config.source_backbone)
        line, _ = _network_code(source_spec)  # its definitions, if any, are added by training_script
        make = ["    " + line.replace("net = ", "return ", 1).replace("weights=WEIGHTS", "weights=SOURCE_BACKBONE_WEIGHTS")]
    head = ["def source_network():",
            '    """The network the shared layers come from."""']
    if config.source_run:
        head += ["    path = Path(SOURCE_WEIGHTS) if Path(SOURCE_WEIGHTS).is_absolute() else Path(__file__).parent / SOURCE_WEIGHTS",
                 "    if not path.is_file():",
                 '        sys.exit(f"The earlier run\'s model {path} is missing: copy model.keras from that run\'s folder in the "',
                 '                 "TransferLab workspace (runs/<run id>/) and set SOURCE_WEIGHTS to where it is.")']
    return head + make + [
        "",
        "",
        "SHARED = set()  # the layers copied from the source: frozen in the first phase",
        "",
        "",
        "def load_source_weights(base):",
        '    """Copy every layer the source shares with this backbone (same name, same weight shapes)."""',
        "    source = source_network()",
        "    by_name = {layer.name: layer for layer in source.layers if layer.weights}",
        "    for layer in network(base).layers:",
        "        other = by_name.get(layer.name)",
        "        if layer.weights and other is not None and [w.shape for w in other.weights] == [w.shape for w in layer.weights]:",
        "            layer.set_weights(other.get_weights())",
        "            SHARED.add(layer.name)",
        "    if not SHARED:",
        '        sys.exit("The source shares no layer with this backbone (same name and weight shapes); use distillation.")',
        '    print(f"{len(SHARED)} shared layers copied from the source; the others are difference layers")',
        "",
        "",
        "def apply_phase(base, phase):",
        '    """As in TransferLab: the "difference" phase opens only the layers not copied from the source."""',
        "    if phase.base_trainable != \"difference\":",
        "        return apply_backbone_phase(base, phase)",
        "    base.trainable = True",
        "    for layer in network(base).layers:",
        "        layer.trainable = layer.name not in SHARED and not (PRETRAINED and isinstance(layer, layers.BatchNormalization))",
    ]


_DISTILLER = '''class Distiller(keras.Model):
    """The student, trained on the teacher's softened answers and the true labels (Hinton et al. 2015):
    loss = DISTILL_WEIGHT * KL(teacher_T || student_T) * T^2 + (1 - DISTILL_WEIGHT) * cross-entropy."""

    def __init__(self, student, teacher, **kwargs):
        super().__init__(**kwargs)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        # With augmentation, the teacher answers the very view the student sees (function matching): the
        # augmentation runs first, then the student's layers after it and the teacher on the same pixels.
        self.augmenter = next((layer for layer in student.layers if layer.name == "augmentation"), None)
        self.after = None if self.augmenter is None else keras.Model(self.augmenter.get_output_at(0), student.output)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy]

    def call(self, x, training=False):
        return self.student(x, training=training)

    def distillation_loss(self, x, y, probs, sample_weight):
        # The teacher sees the images at its own size; probabilities -> log-probabilities are logits up to a
        # constant, which the softmax cancels, so this is softmax(logits / T).
        teacher = self.teacher(tf.image.resize(x, (TEACHER_SIZE, TEACHER_SIZE)), training=False)
        log_t = tf.nn.log_softmax(tf.math.log(tf.clip_by_value(teacher, 1e-30, 1.0)) / TEMPERATURE)
        log_s = tf.nn.log_softmax(tf.math.log(tf.clip_by_value(tf.cast(probs, tf.float32), 1e-30, 1.0)) / TEMPERATURE)
        kl = tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=-1)
        ce = keras.losses.sparse_categorical_crossentropy(y, probs)
        per_image = DISTILL_WEIGHT * kl * TEMPERATURE**2 + (1.0 - DISTILL_WEIGHT) * ce
        if sample_weight is not None:
            per_image *= tf.cast(tf.reshape(sample_weight, [-1]), per_image.dtype)
        return tf.reduce_mean(per_image)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.augmenter is not None:
            x = self.augmenter(x, training=True)
        with tf.GradientTape() as tape:
            probs = (self.student if self.after is None else self.after)(x, training=True)
            loss = self.distillation_loss(x, y, probs, sample_weight) + sum(self.student.losses)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self.update(loss, y, probs)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        probs = self.student(x, training=False)
        return self.update(self.distillation_loss(x, y, probs, sample_weight), y, probs)

    def update(self, loss, y, probs):
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(y, probs)
        return {m.name: m.result() for m in self.metrics}


_TRAINER = []


def make_trainer(model, phase, steps_per_epoch):
    """The student inside one Distiller (made once, so its checkpoint loads back), the teacher loaded from TEACHER_MODEL."""
    if not _TRAINER:
        path = Path(TEACHER_MODEL) if Path(TEACHER_MODEL).is_absolute() else Path(__file__).parent / TEACHER_MODEL
        if not path.is_file():
            sys.exit(f"The teacher's model {path} is missing: copy model.keras from the teacher run's folder in the "
                     "TransferLab workspace (runs/<run id>/) and set TEACHER_MODEL to where it is.")
        # A teacher built on a TF Hub model holds a hub.KerasLayer, which Keras loads only when told the class.
        custom = {"KerasLayer": hub.KerasLayer} if TEACHER_HUB else None
        _TRAINER.append(Distiller(model, keras.models.load_model(path, compile=False, custom_objects=custom)))
    return _TRAINER[0]'''


def _distill_code(config: RunConfig, teacher_model: str, ws: Path) -> tuple[list[str], list[str]]:
    """Constants and the Distiller (a Model.train_step override) for a distill script."""
    teacher_size = config.image_size
    teacher_caffe = teacher_per_image = teacher_hub = False
    try:
        teacher = runs.load_config(runs.run_path(config.source_run, ws))
        teacher_size = teacher.image_size
        teacher_spec = backbones.get(teacher.backbone)
        teacher_caffe, teacher_hub = teacher_spec.preprocessing == "caffe", bool(teacher_spec.hub_handle)
        teacher_per_image = teacher_spec.preprocessing == "per_image"  # its model.keras holds PerImageStandardize
    except (TransferLabError, OSError, ValueError):
        pass
    constants = [f"TEACHER_MODEL = {teacher_model!r}  # the teacher run's model.keras (relative: next to this script)",
                 f"TEACHER_HUB = {teacher_hub}  # the teacher is built on a TF Hub model (needs tensorflow-hub)",
                 f"TEACHER_SIZE = {teacher_size}  # the teacher's input size",
                 f"TEMPERATURE = {config.temperature!r}  # how much the teacher's answers are softened",
                 f"DISTILL_WEIGHT = {config.distill_weight!r}  # the teacher's share of the loss"]
    return constants, (["CAFFE"] if teacher_caffe else []) + (["PER_IMAGE"] if teacher_per_image else []) + (
        ["HUB"] if teacher_hub else []) + [_DISTILLER]


def shown_folder(dataset_folder: str | Path) -> str:
    """The dataset folder as a script shows it: the real path, except on a shared server ("images")."""
    return "images" if settings.hosted() else str(dataset_folder)


_ADAPTER = '''def target_images(data_dir):
    """The unlabelled target images adaptation lines up with: the run's split ("target" -> "adapt", so the
    target's test images never adapt), else every image in TARGET_DIR."""
    target_dir = Path(sys.argv[3] if len(sys.argv) > 3 else TARGET_DIR)
    split_file = split_path(data_dir)
    parts = json.loads(split_file.read_text()) if split_file.is_file() else {}
    if "target" in parts:
        names = parts["target"]["adapt"]
    else:
        names = [str(p.relative_to(target_dir)) for p in sorted(target_dir.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not names:
        sys.exit(f"No target images in {target_dir}: give the folder of images from where the model will be used "
                 "as the third argument, or set TARGET_DIR.")
    return [str(target_dir / name) for name in names]


def training_data(train_ds, data_dir):
    """((source batch, target batch), labels): the target images cycle, shuffled anew, beside each source batch."""
    paths = target_images(data_dir)

    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), (IMAGE_SIZE, IMAGE_SIZE))

    if RECOLOR > 0:  # CORAL on features, measured again in this phase
        trainer = _TRAINER[0]
        source = trainer.front.predict(train_ds.map(lambda x, y: x), verbose=0)
        target = trainer.front.predict(tf.data.Dataset.from_tensor_slices(paths).map(load).batch(BATCH_SIZE), verbose=0)
        trainer.recolor = tuple(tf.constant(a) for a in recolor_map(source, target, RECOLOR))
        print(f"re-coloured {len(source)} training images' features like {len(target)} target images'")
    target = tf.data.Dataset.from_tensor_slices(paths).shuffle(len(paths), seed=SEED + 1, reshuffle_each_iteration=True)
    target = target.repeat().map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH_SIZE)
    paired = tf.data.Dataset.zip((train_ds, target)).map(lambda s, t: ((s[0], t), s[1]))
    return paired.prefetch(tf.data.AUTOTUNE)


_TRAINER = []


def make_trainer(model, phase, steps_per_epoch):
    """The classifier inside one AdaptationTrainer (made once, so its checkpoint loads back); the adaptation's
    ramp starts again in every phase, as in TransferLab."""
    if not _TRAINER:
        front = keras.Model(model.input, model.get_layer("pool").output, name="front")  # augmentation included
        _TRAINER.append(AdaptationTrainer(model, ADAPTS, ADAPT_LOSS, ADAPT_WEIGHT, 1, front))
    trainer = _TRAINER[0]
    trainer.total_steps = float(max(1, steps_per_epoch * phase.epochs))
    trainer.step_count.assign(0.0)
    return trainer'''

# What adaptation copies from core/engine/adaptation.py, in an order that reads top-down.
_ADAPTATION_NAMES = ("KERNEL_MULTIPLIERS", "ramp", "gradient_reversal", "_reversal", "mmd", "coral", "RECOLOR_RIDGE",
                     "RECOLOR_MAX_FEATURES", "recolor_map", "recolor", "domain_classifier", "_front_layers", "AdaptationTrainer")


def _adaptation_code(config: RunConfig, dataset_folder: str, ws: Path) -> tuple[list[str], list[str]]:
    """Constants and code for an adapting strategy: the target images, paired batches and the adaptation trainer,
    whose losses and train_step are copied from core/engine/adaptation.py's own source."""
    try:
        target = str(datasets.dataset_path(config.target_dataset_id or "", ws))
    except TransferLabError:  # the target dataset was deleted since: the user names a folder when running it
        target = "target"
    if settings.hosted():
        target = "target_images"
    constants = [f"TARGET_DIR = {target!r}  # the unlabelled images from where the model will be used (3rd argument)",
                 f"ADAPTS = {adaptation.adapts(config)!r}  # adversarial (DANN) or discrepancy (MMD / CORAL)",
                 f"ADAPT_LOSS = {config.adapt_loss!r}  # recolor (CORAL on features), or the discrepancy lost: mmd or coral",
                 f"ADAPT_WEIGHT = {config.adapt_weight!r}  # the adaptation loss's weight beside the label loss",
                 f"RECOLOR = {adaptation.recolor_strength(config)!r}  # the share of the way the training images' "
                 "features are re-coloured like the target's before each phase (CORAL on features; 0: not)"]
    copied = _definitions(adaptation.__file__)
    code = "from functools import lru_cache\n\n\n" + "\n\n\n".join(copied[name] for name in _ADAPTATION_NAMES)
    return constants, [code, _ADAPTER]


def _script_files(config: RunConfig, dataset_folder: str, source_weights: str | None, classes: list[str] | None,
                  ws: Path) -> tuple[str | None, list[str] | None, list[str] | None]:
    """The earlier run's weights file the script loads, the class order, and each class's folder."""
    if strategies.get(config.strategy).source and source_weights is None:
        source_weights = str(features.source_weights_file(ws, config))
        if settings.hosted():  # no server paths for visitors of a shared server: a file to put beside the script
            source_weights = f"source_run/{Path(source_weights).name}"
    if methods.of(config).ships_source_run and config.source_run and source_weights is None:
        source_weights = str(runs.runs_root(ws) / config.source_run / "model.keras")
        if settings.hosted():
            source_weights = "source_run/model.keras"
    info_file = Path(dataset_folder) / "dataset.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    classes = classes or info.get("classes")
    # TransferLab stores each class under a safe folder name, which may differ from the class name.
    class_dirs = [info.get("class_dirs", {}).get(c, c) for c in classes] if classes else None
    return source_weights, classes, class_dirs


def _constants(config: RunConfig, dataset_folder: str, source_weights: str | None, classes: list[str] | None,
               class_dirs: list[str] | None, split_file: str | None) -> list[str]:
    """The run's settings as the script's constants, and its phases."""
    spec, strategy, head = backbones.get(config.backbone), strategies.get(config.strategy), config.head
    phases = [p for p in strategy.phases(config) if p.epochs > 0]
    phase_lines = [f"    Phase({p.name!r}, {p.epochs}, {p.learning_rate!r}, {p.base_trainable!r}, {p.top_layers}, "
                   f"{p.top_groups}),  # {p.label}" for p in phases]
    return [
        "# The run's settings (TransferLab's config.json holds the same values).",
        f"DATA_DIR = {shown_folder(dataset_folder)!r}",
        f"CLASSES = {classes!r}  # the order of the model's outputs (None: the sorted class folders)",
        f"CLASS_DIRS = {class_dirs!r}  # each class's folder in DATA_DIR (None: named like the class)",
        f"SPLIT_FILE = {split_file!r}  # a run's split.json (relative: next to this script); None: see split_images",
        f"IMAGE_SUFFIXES = {('.jpg', '.jpeg', '.png', '.bmp', '.gif')!r}",
        f"IMAGE_SIZE = {config.image_size}",
        f"BATCH_SIZE = {config.batch_size}",
        f"SEED = {config.seed}",
        f"VAL_FRACTION = {config.val_fraction!r}",
        f"TEST_FRACTION = {config.test_fraction!r}",
        f"WEIGHTS = {('imagenet' if config.weights == 'imagenet' and not spec.hub_handle else None)!r}"
        "  # ImageNet weights, or None: random (or SOURCE_WEIGHTS)",
        f"SOURCE_WEIGHTS = {source_weights!r}  # an earlier run's weights (domain_weights, weight_init)",
        f"PRETRAINED = {config.weights != 'none'}  # keeps BatchNorm statistics frozen",
        f"DROPOUT = {head.dropout!r}",
        f"HIDDEN_UNITS = {head.hidden_units}",
        f"L2 = {head.l2!r}",
        f"OPTIMIZER = {config.optimizer!r}",
        f"SCHEDULE = {config.schedule!r}  # constant, cosine (decay within each phase), warmup_cosine or plateau",
        f"WARMUP_FRACTION = {modeling.WARMUP_FRACTION!r}  # warmup_cosine: the share of a phase's steps that warm up",
        f"LABEL_SMOOTHING = {config.label_smoothing!r}",
        f"CLASS_WEIGHTS = {config.class_weights!r}  # auto: balanced when the classes are uneven",
        f"MIXED_PRECISION = {config.mixed_precision}  # float16 on a GPU only",
        f"PATIENCE = {config.patience}  # early stopping on validation loss; 0 switches it off",
        "",
        "",
        "class Phase:",
        '    """One fit(): which backbone layers train ("none", "all", the "top" N layers or N "groups")."""',
        "",
        "    def __init__(self, name, epochs, learning_rate, base_trainable, top_layers=0, top_groups=0):",
        "        self.name, self.epochs, self.learning_rate = name, epochs, learning_rate",
        "        self.base_trainable, self.top_layers, self.top_groups = base_trainable, top_layers, top_groups",
        "",
        "",
        f"# Strategy {config.strategy}: {strategy.sentence}",
        "PHASES = [",
        *phase_lines,
        "]",
    ]


_POOLING = {"avg": "layers.GlobalAveragePooling2D(name=\"pool\")", "max": "layers.GlobalMaxPooling2D(name=\"pool\")",
            "flatten": "layers.Flatten(name=\"pool\")",
            "maxpool_flatten": ('keras.Sequential([layers.MaxPooling2D(2, padding="same"), layers.Flatten()], '
                                'name="pool")')}
_OPTIMIZERS = {"adam": "keras.optimizers.Adam(learning_rate=learning_rate)",
               "adamw": "keras.optimizers.AdamW(learning_rate=learning_rate)",
               "sgd": "keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)",
               "rmsprop": "keras.optimizers.RMSprop(learning_rate=learning_rate)"}


def _functions(config: RunConfig, make_net: str) -> list[str]:
    """augmentation_layers, backbone, pooling, make_optimizer and load_source_weights for this config."""
    spec = backbones.get(config.backbone)
    return [
        "def augmentation_layers():",
        '    """Random changes applied to training images, each epoch anew."""',
        "    return [",
        *_augmentation_code(config),
        "    ]",
        "",
        "",
        "def backbone():",
        f'    """{spec.label} with its preprocessing: raw 0-255 RGB pixels in, features out."""',
        f"    {make_net}",
        *(["    scratch_batchnorm(net)  # from random weights: BatchNorm statistics that keep up"]
          if config.weights == "none" and not spec.hub_handle else []),
        '    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="pixels")',
        f"    x = {_preprocess_code(spec.preprocessing)}(inputs)",
        f"    return keras.Model(inputs, net(x), name={backbones.base_name(spec)!r})",
        "",
        "",
        "def pooling(feature_rank):",
        '    """Feature map -> one vector per image (a TF Hub feature vector is pooled already)."""',
        "    if feature_rank == 2:",
        '        return layers.Identity(name="pool")',
        f"    return {_POOLING[config.head.pooling]}",
        "",
        "",
        "def make_optimizer(learning_rate):",
        f"    return {_OPTIMIZERS[config.optimizer]}",
        "",
        "",
        *_source_loader(config, spec),
    ]


_ONE_DOMAIN = "def training_data(train_ds, data_dir):\n    return train_ds  # one domain: the images as they are"
_PLAIN_TRAINER = ("def make_trainer(model, phase, steps_per_epoch):\n    return model  # no teacher: the model trains itself"
                  "\n\n\n" + _ONE_DOMAIN)


def _method_code(config: RunConfig, dataset_folder: str, source_weights: str | None, ws: Path,
                 extra: list[str], same: list[str]) -> tuple[list[str], bool]:
    """What the run's training method adds (constants; code into extra, same changed in place); whether it needs
    tensorflow-hub (a TF Hub teacher)."""
    constants: list[str] = []
    custom = _definitions(layers.__file__)
    caffe = custom["_CAFFE_MEAN_BGR"] + "\n\n\n" + custom["CaffePreprocess"]
    if methods.is_method(config, transfer.METHOD):  # its apply_phase (in functions) opens the difference layers first
        same[-1] = same[-1].replace("def apply_phase(", "def apply_backbone_phase(", 1)
        if config.source_backbone:
            source_spec = backbones.get(config.source_backbone)
            constants.append(f"SOURCE_BACKBONE_WEIGHTS = {('imagenet' if 'imagenet' in source_spec.weights_options else None)!r}"
                             f"  # {source_spec.label}'s weights (None: random)")
            extra += [e for e in _network_code(source_spec)[1] if e not in extra]
        else:
            source_config = runs.load_config(runs.run_path(config.source_run, ws))
            constants.append(f"SOURCE_BASE = {backbones.base_name(backbones.get(source_config.backbone))!r}"
                             "  # the earlier run's backbone, inside its model.keras")
    if methods.is_method(config, distill.METHOD):
        more, code = _distill_code(config, source_weights or "", ws)
        named = {"CAFFE": caffe, "PER_IMAGE": custom["PerImageStandardize"]}  # layers the teacher's file holds
        extra += [named.get(c, c) for c in code if c != "HUB" and named.get(c, c) not in extra]
        extra.append(_ONE_DOMAIN)
        return constants + more, "HUB" in code
    if methods.is_method(config, adaptation.METHOD):
        more, code = _adaptation_code(config, dataset_folder, ws)
        extra += code
        return constants + more, False
    extra.append(_PLAIN_TRAINER)
    return constants, False


SOUND_SCRIPT_SENTENCE = ("TransferLab writes standalone training scripts for sounds on a log-mel backbone trained "
                         "with a plain strategy (from scratch, feature extraction, fine-tuning); this run ({what}) is "
                         "not one, so retrain it with TransferLab itself: python -m core train config.json")


def sound_script(config: RunConfig, spec: backbones.BackboneSpec) -> str:
    """For a sound run the script cannot train (a TF Hub sound model, or a teacher, source run or target domain):
    a script that says so in one sentence and how to retrain the run instead (it exits with that sentence)."""
    what = (f"{spec.label}, a TF Hub sound model with its own front end" if spec.front_end == "waveform"
            else f"the {strategies.get(config.strategy).label} strategy")
    return _stopping_script(config, spec, SOUND_SCRIPT_SENTENCE.format(what=what))


def _stopping_script(config: RunConfig, spec: backbones.BackboneSpec, sentence: str) -> str:
    """A train.py that only says `sentence` and exits with it, so nothing half-works."""
    return (f'"""Run config: backbone {spec.id} ({spec.label}), strategy {config.strategy}, dataset '
            f'{config.dataset_id}.\n\n{sentence}.\n"""\n\nimport sys\n\nsys.exit({sentence!r})\n')


TEXT_SCRIPT_SENTENCE = ("TransferLab writes standalone training scripts for images and sounds, not texts; this run "
                        "trains on texts (its encoder, {encoder}, inside the model), so retrain it with TransferLab "
                        "itself: python -m core train config.json")


def text_script(config: RunConfig, spec: backbones.BackboneSpec) -> str:
    """For a text run: a script that says in one sentence that it does not train texts, and how to retrain the run."""
    return _stopping_script(config, spec, TEXT_SCRIPT_SENTENCE.format(encoder=spec.label))


def script_trains(config: RunConfig) -> bool:
    """Whether the generated script trains this run: every image run, and sounds on a log-mel backbone with a plain
    strategy (not a TF Hub sound model, not a teacher, a source run or a target domain); never texts."""
    spec = backbones.get(config.backbone)
    if spec.kind == "text" or spec.front_end == "waveform":
        return False
    return not spec.front_end or methods.is_method(config, plain.METHOD)


def training_script(config: RunConfig, dataset_folder: str, source_weights: str | None = None,
                    classes: list[str] | None = None, split_file: str | None = None, ws: Path | None = None) -> str:
    """A standalone, runnable tf_keras script that trains what this config trains on dataset_folder.

    source_weights: for domain_weights the earlier run's model.keras, for weight_init its early
    checkpoint (checkpoints/early_base.weights.h5), absolute or relative to the script's folder;
    the default is that file in the workspace ws (default: the TL_WORKSPACE one).
    classes: the class order (the model's outputs); by default the dataset's dataset.json, else
    the script sorts the class folders. split_file: a run's split.json ({classes, train, val,
    test} of [path relative to the dataset folder, class index]), absolute or next to the script;
    without it, a split.json beside the images is used, else the script draws a stratified split.
    An adapting strategy's script trains with its adaptation loss on the target images (TARGET_DIR).
    """
    config, _ = adaptation.prepare(config.validate())  # an adapting run's head gets its adaptation layer
    ws = ws or workspace()
    spec = backbones.get(config.backbone)
    if spec.kind == "text":
        return text_script(config, spec)
    if not script_trains(config):
        return sound_script(config, spec)
    source_weights, classes, class_dirs = _script_files(config, dataset_folder, source_weights, classes, ws)
    make_net, extra = _network_code(spec)
    if config.weights == "none" and not spec.hub_handle:  # the same BatchNorm momentum as TransferLab's networks
        built = _definitions(networks.__file__)
        extra.insert(0, built["SCRATCH_BN_MOMENTUM"] + "\n\n\n" + built["scratch_batchnorm"])
    custom = _definitions(layers.__file__)
    if spec.preprocessing == "caffe":
        extra.append(custom["_CAFFE_MEAN_BGR"] + "\n\n\n" + custom["CaffePreprocess"])
    if spec.preprocessing == "per_image":
        extra.append(custom["PerImageStandardize"])
    if config.label_smoothing > 0:
        extra.append(custom["SmoothedSparseCrossentropy"])
    constants = _constants(config, dataset_folder, source_weights, classes, class_dirs, split_file)
    # What trains in each phase: the same functions as TransferLab's trainer (core/engine/modeling.py).
    trainer = _definitions(modeling.__file__)
    same = [trainer[name] for name in ("network", "_has_trainable", "_height", "conv_groups", "_open", "apply_phase")]
    more, teacher_hub = _method_code(config, dataset_folder, source_weights, ws, extra, same)
    hub = bool(spec.hub_handle) or teacher_hub
    adapts = methods.is_method(config, adaptation.METHOD)
    header = _HEAD.format(label=spec.label, strategy=config.strategy, hub_pip=" tensorflow-hub" if hub else "",
                          hub_import="import tensorflow_hub as hub\n" if hub else "",
                          target_arg=" [TARGET_DIR]" if adapts else "",
                          target_help=("\n  TARGET_DIR  unlabelled images from where the model will be used, for the "
                                       "adaptation (default: TARGET_DIR below)") if adapts else "")
    functions, body = "\n".join(_functions(config, make_net)), _BODY
    if spec.front_end:  # sounds: WAV clips in, the log-mel front end inside the model
        header, constants, functions, body = _for_sounds(config, header, constants, functions, extra)
    parts = [header + "\n".join(constants + more), *extra, functions, *same]
    return "\n\n\n".join(p.strip("\n") for p in parts) + "\n" + body


# What a sound script changes in the image script (each text must be found, so the two cannot drift apart).
_SOUND_EDITS = {
    "header": [("each holding that class's images", "each holding that class's clips (16 kHz mono WAV)")],
    "functions": [
        ('    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="pixels")\n',
         '    inputs = keras.Input((CLIP_SAMPLES,), name="waveform")\n'
         '    spectrogram = SpectrogramPicture(IMAGE_SIZE, name="log_mel")(inputs)  # the picture the network sees\n'),
        ("(inputs)\n    return keras.Model(inputs, net(x)", "(spectrogram)\n    return keras.Model(inputs, net(x)"),
        ("raw 0-255 RGB pixels in, features out", "a 16 kHz waveform in, its log-mel picture inside, features out"),
    ],
    "body": [
        ("        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)\n"
         "        return tf.image.resize(tf.cast(image, tf.float32), (IMAGE_SIZE, IMAGE_SIZE)), label",
         "        clip, _ = tf.audio.decode_wav(tf.io.read_file(path), desired_channels=1)  # -1..1, as stored\n"
         "        clip = clip[:, 0]\n"
         "        start = tf.maximum(0, (tf.shape(clip)[0] - CLIP_SAMPLES) // 2)  # a longer clip: its middle second\n"
         "        clip = clip[start:start + CLIP_SAMPLES]\n"
         "        return tf.pad(clip, [[0, CLIP_SAMPLES - tf.shape(clip)[0]]]), label  # one second: padded if shorter"),
        ('"""(float32 0-255 images, labels) batches, streamed from disk."""',
         '"""(float32 16 kHz waveforms of CLIP_SAMPLES, labels) batches, streamed from disk."""'),
        ('inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")',
         'inputs = keras.Input((CLIP_SAMPLES,), name="waveform")'),
        ("Random changes for training images only", "Random changes for training clips only"),
    ],
}


def _edited(text: str, edits: list[tuple[str, str]]) -> str:
    for old, new in edits:
        if old not in text:
            raise TransferLabError(f"The sound training script cannot be written: '{old[:60]}' is not in the image "
                                   "script.")
        text = text.replace(old, new)
    return text


def _for_sounds(config: RunConfig, header: str, constants: list[str], functions: str,
                extra: list[str]) -> tuple[str, list[str], str, str]:
    """The image script's parts turned into a sound script: WAV clips in, and the front end and the sound
    augmentation copied from core/engine/sounds.py, so the script makes the same spectrogram as TransferLab."""
    a, front = config.augment, _definitions(sounds.__file__)
    code = "\n\n\n".join(front[name] for name in ("log_mel", "_mel_filters", "SpectrogramPicture", "SoundAugment"))
    extra.append("from functools import lru_cache\n\n\n" + code.replace("data_sounds.SAMPLE_RATE", "SAMPLE_RATE"))
    constants = [("IMAGE_SUFFIXES = ('.wav',)  # the clips TransferLab stores" if line.startswith("IMAGE_SUFFIXES")
                  else line) for line in constants]
    constants[3:3] = [
        f"SAMPLE_RATE = {data_sounds.SAMPLE_RATE}",
        f"CLIP_SAMPLES = {data_sounds.CLIP_SAMPLES}  # one second",
        "# The log-mel front end: 25 ms windows every 10 ms, 64 mel bands, dB below the clip's loudest cell.",
        f"FRAME, STEP, FFT, MELS = {sounds.FRAME}, {sounds.STEP}, {sounds.FFT}, {sounds.MELS}",
        f"LOW_HZ, HIGH_HZ = {sounds.LOW_HZ}, {sounds.HIGH_HZ}",
        f"TOP_DB = {sounds.TOP_DB}",
    ]
    steps = (f"        SoundAugment(noise={a.noise}, gain={a.gain}, shift={a.shift}, spec_mask={a.spec_mask}, "
             f"seed={config.seed}),\n") if (a.noise or a.gain or a.shift or a.spec_mask) else ""
    functions = re.sub(r"(    return \[\n)(?:        .*\n)*(    \])", lambda m: m.group(1) + steps + m.group(2),
                       functions, count=1)
    return (_edited(header, _SOUND_EDITS["header"]), constants, _edited(functions, _SOUND_EDITS["functions"]),
            _edited(_BODY, _SOUND_EDITS["body"]))
