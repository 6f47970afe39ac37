"""Knowledge distillation: a finished run (the teacher) teaches a student network of any architecture.

The loss (Hinton et al. 2015): A * KL(teacher_T || student_T) * T^2 + (1 - A) * cross-entropy with
the true labels, where x_T is the softmax of the logits divided by the temperature T. Both models
output probabilities; log-probabilities are logits up to a constant, which the softmax cancels, so
softmax(log(p) / T) is exactly the softened distribution. T^2 keeps the soft term's gradients the
same size whatever T is. Defaults T = 4 and A = 0.7: the middle of the ranges Hinton et al. and
the keras-io example use (T 2-5 for few classes, A 0.5-0.9); on the flowers sweep (issue 27, 150
per class) T = 8 was no better and A = 1 (no labels) 9 points worse.

When the student passes images with augmentation on, the teacher runs beside it at every step on
the very same augmented view (paired_trainer; function matching, Beyer et al. 2022). Otherwise the
teacher's probabilities on the training and validation images (and on each augmented view the
feature cache holds) are computed once and cached in <workspace>/cache/teacher/, keyed by the teacher
run and a hash of its model file, so the teacher never runs twice on the same image. In Keras the
labels travel packed: y = [label, teacher probabilities...], read by the loss and the accuracy.

As a training method (core.engine.method), `Distillation` loads the teacher before the student is
built, fits every phase on packed labels with the distillation loss, and after the run trains its
companion, the student alone (`compare_student_alone`), and writes the verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core import events
from core.data import tfdata
from core.engine import features, inputs, modeling, transfer
from core.engine.method import PhaseData, Run, Settle, Train, companion
from core.engine.plain import Plain
from core.errors import ConfigError, RunStateError
from core.spec import backbones, strategies
from core.spec.config import RunConfig
from core.spec.strategies import Phase
from core.store import runs
from core.store.files import read_json, write_json

CACHE_VERSION = 1
_EPS = 1e-30


# ---------------------------------------------------------------- the loss


def soften(probs: Any, temperature: float) -> Any:
    """Probabilities at temperature T: softmax(log(p) / T) (numpy; the loss does the same in TensorFlow)."""
    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, None)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _kd(labels: Any, teacher: Any, student: Any, temperature: float, weight: float) -> Any:
    """Per image: weight * KL(teacher_T || student_T) * T^2 + (1 - weight) * cross-entropy (TensorFlow)."""
    import tensorflow as tf
    import tf_keras as keras

    log_s = tf.nn.log_softmax(tf.math.log(tf.clip_by_value(student, _EPS, 1.0)) / temperature)
    log_t = tf.nn.log_softmax(tf.math.log(tf.clip_by_value(teacher, _EPS, 1.0)) / temperature)
    kl = tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=-1)
    ce = keras.losses.sparse_categorical_crossentropy(labels, student)
    return weight * kl * temperature**2 + (1.0 - weight) * ce


def distillation_loss(temperature: float, weight: float) -> Any:
    """The Keras loss on packed labels [label, teacher probabilities...] and the student's probabilities."""
    import tensorflow as tf

    def loss(y_true: Any, y_pred: Any) -> Any:
        labels = tf.cast(y_true[:, 0], tf.int32)
        return _kd(labels, tf.cast(y_true[:, 1:], tf.float32), tf.cast(y_pred, tf.float32), temperature, weight)

    loss.__name__ = "distillation_loss"
    return loss


def paired_loss(temperature: float, weight: float) -> Any:
    """The same loss for a paired trainer (paired_trainer): y_true [label], y_pred [student..., teacher...]."""
    import tensorflow as tf

    def loss(y_true: Any, y_pred: Any) -> Any:
        student, teacher = tf.split(tf.cast(y_pred, tf.float32), 2, axis=-1)
        return _kd(tf.cast(y_true[:, 0], tf.int32), tf.stop_gradient(teacher), student, temperature, weight)

    loss.__name__ = "distillation_loss"
    return loss


def packed_accuracy(paired: bool = False) -> Any:
    """Accuracy on packed labels, logged as "accuracy" like every run's (paired: of the student's half)."""
    import tensorflow as tf
    import tf_keras as keras

    def accuracy(y_true: Any, y_pred: Any) -> Any:
        student = tf.split(y_pred, 2, axis=-1)[0] if paired else y_pred
        hit = tf.equal(tf.cast(y_true[:, 0], tf.int64), tf.argmax(student, axis=-1))
        return tf.cast(hit, tf.float32)

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")


def compile_for(model: Any, config: RunConfig, learning_rate: Any, paired: bool = False) -> None:
    """Compile a student (or its head, or a paired trainer) with the distillation loss."""
    make = paired_loss if paired else distillation_loss
    model.compile(optimizer=modeling.optimizer(config.optimizer, learning_rate),
                  loss=make(config.temperature, config.distill_weight), metrics=[packed_accuracy(paired)])


# ---------------------------------------------------------------- the teacher


@dataclass
class Teacher:
    """A finished run used as teacher, and how to run it on a batch of raw pixels."""

    run_id: str
    run_dir: Path
    image_size: int
    classes: list[str]
    digest: str
    predict: Callable[[Any], np.ndarray]
    label: str
    model: Any = None  # the Keras model itself, for a paired trainer (paired_trainer)


def load_teacher(config: RunConfig, ws: Path, classes: list[str]) -> Teacher:
    """The teacher run, checked: finished, with a saved model, trained on exactly these classes."""
    run_dir = runs.run_path(config.source_run, ws)
    status = runs.read_status(run_dir)
    model_path = run_dir / "model.keras"
    if status.get("state") != "done" or not model_path.is_file():
        raise RunStateError(f"Run {config.source_run} has not finished training, so it cannot teach yet; "
                            "choose a finished run as teacher.")
    teacher_config = runs.load_config(run_dir)
    try:
        teacher_classes = list(read_json(run_dir / "split.json")["classes"])
    except (OSError, ValueError, KeyError):
        teacher_classes = []
    if teacher_classes != list(classes):
        raise ConfigError(
            f"Run {config.source_run} was trained on the classes {', '.join(teacher_classes) or '(unknown)'}, "
            f"but this dataset has {', '.join(classes)}; a teacher must know exactly the student's classes, in the "
            "same order, so choose a run trained on this dataset (or one with the same class folders)."
        )
    model = modeling.load(model_path)
    label = f"run {config.source_run} ({backbones.get(teacher_config.backbone).label})"
    return Teacher(config.source_run, run_dir, teacher_config.image_size, teacher_classes,
                   features._file_digest(model_path) or "", lambda x: np.asarray(model.predict_on_batch(x)), label,
                   model)


def teacher_cache_file(ws: Path, config: RunConfig, teacher: Teacher, views: int) -> Path:
    """Where the teacher's probabilities on this dataset are kept (per image, and per augmented view)."""
    key: dict[str, Any] = {"version": CACHE_VERSION, "dataset": config.dataset_id, "teacher": teacher.run_id,
                           "teacher_sha256": teacher.digest, "teacher_size": teacher.image_size}
    if views:
        # Augmented views are drawn at the student's size, with the student's augmentation, as the
        # student's feature cache holds them.
        key |= {"views": views, "augment": asdict(config.augment), "seed": config.seed,
                "image_size": config.image_size, "backbone": config.backbone, "weights": config.weights,
                "pooling": config.head.pooling}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return ws / "cache" / "teacher" / f"{digest}.npz"


def _load(path: Path) -> dict[str, dict[str, np.ndarray]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = data["keys"].tolist()
            out = {k: {"teacher": t} for k, t in zip(keys, data["teacher"])}
            if "features" in data:
                for k, f in zip(keys, data["features"]):
                    out[k]["features"] = f
            return out
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache is recomputed, never trusted


def _save(path: Path, table: dict[str, dict[str, np.ndarray]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    arrays = {"keys": np.array(list(table)), "teacher": np.stack([v["teacher"] for v in table.values()])}
    if all("features" in v for v in table.values()):
        arrays["features"] = np.stack([v["features"] for v in table.values()])
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _keys(info: dict[str, Any], items: list[tuple[str, int]]) -> list[str]:
    return [f"{rel}:{info['hashes'].get(rel, '')}" for rel, _ in items]


def teacher_probs(teacher: Teacher, info: dict[str, Any], root: Path, items: list[tuple[str, int]], cache: Path,
                  batch_size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The teacher's probabilities on these images (n, classes), run only on images not cached yet."""
    keys = _keys(info, items)
    table = _load(cache)
    missing = [i for i, k in enumerate(keys) if k not in table]
    started = time.monotonic()
    if missing:
        todo = [items[i] for i in missing]
        ds = tfdata.pipeline(root, todo, teacher.image_size, batch_size, False, 0)
        out = np.concatenate([teacher.predict(x) for x, _ in ds])
        table.update({keys[i]: {"teacher": p.astype(np.float32)} for i, p in zip(missing, out)})
        _save(cache, table)
    probs = np.stack([table[k]["teacher"] for k in keys]).astype(np.float32)
    return probs, {"images": len(keys), "computed": len(missing), "seconds": round(time.monotonic() - started, 3)}


def paired_views(teacher: Teacher, model: Any, base: Any, info: dict[str, Any], root: Path,
                 items: list[tuple[str, int]], config: RunConfig, cache: Path, views: int
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Augmented views of each image, drawn once: the frozen student's features and the teacher's probabilities
    on the very same pixels ((views, n, dim), (views, n, classes)); cached together."""
    import tensorflow as tf

    keys = _keys(info, items)
    table = _load(cache)
    wanted = [f"{k}#{v}" for v in range(views) for k in keys]
    missing = [i for i, k in enumerate(keys) if any(f"{k}#{v}" not in table or "features" not in table[f"{k}#{v}"]
                                                    for v in range(views))]
    started = time.monotonic()
    if missing:
        augmenter = model.get_layer("augmentation")
        extractor = features.feature_extractor(model, base, augmented=False)
        todo = [items[i] for i in missing]
        size = (teacher.image_size, teacher.image_size)
        for v in range(views):
            ds = tfdata.pipeline(root, todo, config.image_size, config.batch_size, False, config.seed + v)
            feats, probs = [], []
            for x, _ in ds:
                view = augmenter(x, training=True)
                feats.append(np.asarray(extractor.predict_on_batch(view)))
                probs.append(teacher.predict(tf.image.resize(view, size)))
            for i, f, p in zip(missing, np.concatenate(feats), np.concatenate(probs)):
                table[f"{keys[i]}#{v}"] = {"features": f.astype(np.float32), "teacher": p.astype(np.float32)}
        _save(cache, table)
    feats = np.stack([table[k]["features"] for k in wanted]).reshape(views, len(keys), -1)
    probs = np.stack([table[k]["teacher"] for k in wanted]).reshape(views, len(keys), -1)
    return feats, probs, {"images": len(keys), "computed": len(missing), "views": views,
                          "seconds": round(time.monotonic() - started, 3)}


# ---------------------------------------------------------------- what a phase trains on


def paired_trainer(model: Any, teacher: Teacher) -> Any:
    """The student with the teacher beside it on the very same augmented view, as one Keras model whose output
    is [student's probabilities..., teacher's probabilities...] (paired_loss); it shares the student's layers.

    Function matching (Beyer et al. 2022, "Knowledge distillation: a good teacher is patient and consistent"):
    a teacher that answers the clean image while the student sees a flipped, rotated or zoomed one teaches
    it the wrong target for that view. While validating, the augmentation is off and the teacher sees the
    clean image. None when the student has no augmentation, or the teacher cannot take its input.
    """
    import tf_keras as keras

    try:
        augmenter = model.get_layer("augmentation")
    except ValueError:
        return None
    if teacher.model is None:
        return None
    size, teacher_size = tuple(model.input_shape[1:]), tuple(teacher.model.input_shape[1:])
    if teacher_size != size and len(size) != 3:
        return None  # only images are resized for a teacher of another size
    # The student after its augmentation (a nested Sequential's .output is its own graph's; node 0 is the call in model).
    student = keras.Model(augmenter.get_output_at(0), model.output)
    teacher.model.trainable = False
    inputs = keras.Input(size, dtype=model.input.dtype, name="pixels")
    view = augmenter(inputs)
    seen = view if teacher_size == size else keras.layers.Resizing(*teacher_size[:2], name="teacher_size")(view)
    both = keras.layers.Concatenate(dtype="float32", name="student_and_teacher")(
        [student(view), teacher.model(seen, training=False)])
    return keras.Model(inputs, both, name="student_beside_teacher")



def pack(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Labels and teacher probabilities as one float array [label, p_1, ..., p_C] per image."""
    return np.concatenate([np.asarray(labels, np.float32)[..., None], probs.astype(np.float32)], axis=-1)


def _sample_weights(labels: np.ndarray, class_weight: dict[int, float] | None) -> np.ndarray | None:
    if not class_weight:
        return None
    return np.array([class_weight.get(int(y), 1.0) for y in labels], dtype=np.float32)


def _tensor_dataset(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, batch_size: int, seed: int | None,
                    repeat: bool = False) -> Any:
    import tensorflow as tf

    parts = (x, y) if w is None else (x, y, w)
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def phase_inputs(teacher: Teacher, model: Any, base: Any, phase: Phase, config: RunConfig, info: dict[str, Any],
                 root: Path, parts: dict[str, Any], ws: Path, class_weight: dict[int, float] | None
                 ) -> tuple[Any, Any, Any, int | None, dict[str, Any]]:
    """What a distill phase fits: (trainer, train data, validation data, steps per epoch, figures of the passes).

    A frozen student trains its head on cached features (and cached teacher answers); otherwise the
    student sees the images, with the teacher's cached answers on the clean images as soft labels.
    """
    train, val = parts["train"], parts["val"]
    labels = np.array([y for _, y in train])
    val_labels = np.array([y for _, y in val])
    weights = _sample_weights(labels, class_weight)
    clean_cache = teacher_cache_file(ws, config, teacher, 0)
    val_probs, val_fig = teacher_probs(teacher, info, root, val, clean_cache, config.batch_size)
    figures = {"teacher_images": val_fig["images"], "teacher_computed": val_fig["computed"]}
    val_packed = pack(val_labels, val_probs)
    if strategies.uses_feature_cache(config, phase):
        views = config.augment_views if config.augment.any() else 0
        clean = features.feature_extractor(model, base, augmented=False)
        val_x, _ = features.features_for(clean, info, root, val, config, features.cache_file(ws, config, 0))
        if views:
            feats, probs, fig = paired_views(teacher, model, base, info, root, train, config,
                                             teacher_cache_file(ws, config, teacher, views), views)
            train_x = feats.reshape(views * len(labels), -1)
            packed = pack(np.tile(labels, views), probs.reshape(views * len(labels), -1))
            weights = None if weights is None else np.tile(weights, views)
        else:
            train_x, _ = features.features_for(clean, info, root, train, config, features.cache_file(ws, config, 0))
            probs, fig = teacher_probs(teacher, info, root, train, clean_cache, config.batch_size)
            packed = pack(labels, probs)
        figures["teacher_images"] += fig["images"] * max(views, 1)
        figures["teacher_computed"] += fig["computed"] * max(views, 1)
        trainer = features.head_model(model)
        train_data = _tensor_dataset(train_x, packed, weights, config.batch_size, config.seed, repeat=bool(views))
        val_data = _tensor_dataset(val_x, val_packed, None, config.batch_size, None)
        return trainer, train_data, val_data, -(-len(labels) // config.batch_size), figures
    pair = paired_trainer(model, teacher) if config.augment.any() else None
    if pair is not None:  # the teacher answers each augmented view as the student sees it
        column = lambda y: np.asarray(y, np.float32)[:, None]  # noqa: E731
        targets = (column(labels),) if weights is None else (column(labels), weights)
        train_data = tfdata.pipeline(root, train, config.image_size, config.batch_size, True, config.seed, targets=targets)
        val_data = tfdata.pipeline(root, val, config.image_size, config.batch_size, False, config.seed,
                                   targets=(column(val_labels),))
        return pair, train_data, val_data, None, figures | {"paired": True}
    probs, fig = teacher_probs(teacher, info, root, train, clean_cache, config.batch_size)
    figures["teacher_images"] += fig["images"]
    figures["teacher_computed"] += fig["computed"]
    # The run's own image pipeline, with the packed labels (and sample weights) in place of the int labels.
    targets = (pack(labels, probs),) if weights is None else (pack(labels, probs), weights)
    train_data = tfdata.pipeline(root, train, config.image_size, config.batch_size, True, config.seed, targets=targets)
    val_data = tfdata.pipeline(root, val, config.image_size, config.batch_size, False, config.seed,
                               targets=(val_packed,))
    return model, train_data, val_data, None, figures


# ---------------------------------------------------------------- the verdict: teacher, student alone, distilled

REPORT = "distill_report.json"


def student_alone(config: RunConfig) -> RunConfig:
    """The same student, same budget, without the teacher: from scratch, or its usual transfer strategy."""
    if config.weights == "none":
        strategy = "from_scratch"
    else:
        strategy = "fine_tune" if config.fine_tune_epochs > 0 else "feature_extraction"
    return config.with_changes(strategy=strategy, source_run="", compare_student_alone=False, compare_scratch=False,
                               preset="").validate()


def sample_batch(config: RunConfig, batch: int = 16) -> np.ndarray:
    """A batch of made-up inputs of the run's kind (random pixels; a short text for texts) to time a model on."""
    shape, dtype, _ = inputs.of_config(config).signature(config.image_size)
    if dtype == "string":
        return np.array(["a short example text to time the model on"] * batch, dtype=object)
    return np.random.default_rng(0).uniform(0, 255, (batch, *shape)).astype(dtype)


def ms_per_image(model: Any, config: RunConfig, batch: int = 16, repeats: int = 3) -> float:
    """Milliseconds per item of a model on this computer: the fastest of a few timed batches, after a warm-up."""
    x = sample_batch(config, batch)
    model.predict_on_batch(x)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_on_batch(x)
        best = min(best, time.perf_counter() - started)
    return round(1000 * best / batch, 3)


def measure(run_dir: Path, role: str) -> dict[str, Any]:
    """One verdict row: test accuracy, parameters, size on disk, ms per image."""
    config = runs.load_config(run_dir)
    path = run_dir / "model.keras"
    model = modeling.load(path)
    evaluation = read_json(run_dir / "eval.json") if (run_dir / "eval.json").is_file() else {}
    return {"role": role, "run": run_dir.name, "backbone": config.backbone,
            "label": backbones.get(config.backbone).label, "test_accuracy": evaluation.get("accuracy"),
            # Size: the float32 weights (the model file also holds the optimizer's state after training).
            "params": int(model.count_params()), "size_mb": round(4 * model.count_params() / 2**20, 3),
            "file_mb": round(path.stat().st_size / 2**20, 3),
            "ms_per_image": ms_per_image(model, config)}


def verdict(rows: list[dict[str, Any]]) -> str:
    """One or two sentences comparing the distilled student with its teacher (and with the student alone)."""
    by = {r["role"]: r for r in rows}
    teacher, student = by["teacher"], by["distilled"]
    acc = lambda r: 100 * (r["test_accuracy"] or 0.0)  # noqa: E731
    text = (f"The distilled {student['label']} reaches {acc(student):.1f}% test accuracy against the teacher's "
            f"{acc(teacher):.1f}% ({acc(student) - acc(teacher):+.1f} points), at {student['size_mb'] / teacher['size_mb']:.0%} "
            f"of its size and {student['ms_per_image']:.1f} instead of {teacher['ms_per_image']:.1f} ms per image.")
    alone = by.get("student_alone")
    if alone is not None:
        gain = acc(student) - acc(alone)
        text += (f" Trained alone with the same budget, the same student reaches {acc(alone):.1f}%, so the teacher "
                 + (f"added {gain:.1f} points." if gain > 0 else f"did not help here ({gain:+.1f} points)."))
    return text


def finish(config: RunConfig, run_dir: Path, ws: Path, train: Train) -> dict[str, Any]:
    """After a distill run: the student alone (if asked), then distill_report.json with the verdict."""
    out: dict[str, Any] = {}
    with runs.edit_status(run_dir) as status:
        status.links.teacher_run = config.source_run
    alone_dir = None
    if config.compare_student_alone:
        alone_dir, result = companion(run_dir, "student_alone", student_alone(config), train)
        if result["state"] != "done":
            alone_dir = None
        out["student_alone_run"] = alone_dir.name if alone_dir else None
    rows = [measure(runs.run_path(config.source_run, ws), "teacher")]
    if alone_dir is not None:
        rows.append(measure(alone_dir, "student_alone"))
    rows.append(measure(run_dir, "distilled"))
    report = {"teacher_run": config.source_run, "temperature": config.temperature,
              "distill_weight": config.distill_weight, "rows": rows, "verdict": verdict(rows)}
    write_json(run_dir / REPORT, report)
    with runs.edit_status(run_dir) as status:
        status.verdicts.distill_verdict = report["verdict"]
    return out | {"distill": report}


def read_report(run_dir: Path) -> dict[str, Any] | None:
    """A distilled run's distill_report.json, or None."""
    path = run_dir / REPORT
    return read_json(path) if path.is_file() else None


def teachers(ws: Path, classes: list[str]) -> list[dict[str, Any]]:
    """Finished runs of this workspace that can teach a student of these classes (same classes, same order)."""
    out = []
    for info in runs.list_runs(ws):
        if info.state != "done" or info.config is None or not (info.path / "model.keras").is_file():
            continue
        try:
            if list(read_json(info.path / "split.json")["classes"]) != list(classes):
                continue
        except (OSError, ValueError, KeyError):
            continue
        accuracy = (info.evaluation or {}).get("accuracy")
        out.append({"run_id": info.id, "backbone": info.config.backbone,
                    "label": f"{info.id[-12:]}: {backbones.get(info.config.backbone).label}"
                             + (f", test accuracy {accuracy:.0%}" if accuracy is not None else "")})
    return out


# ---------------------------------------------------------------- the method


class Distillation(Plain):
    """Every phase learns from the teacher's cached answers as well as the labels; then the verdict."""

    id = "distillation"
    ships_source_run = True  # the teacher's model.keras

    def prepare(self, config: RunConfig, settle: Settle) -> tuple[RunConfig, list[str]]:
        """Keep the student's backbone (random weights if ImageNet's cannot be had), then settle."""
        config, notices = transfer.keep_backbone(config)
        config, more = settle(config)
        return config, notices + more

    def build(self, run: Run) -> None:
        """The teacher first (checked: finished, same classes), then the student."""
        with run.scope():
            run.memo["teacher"] = load_teacher(run.config, run.ws, run.info["classes"])
        super().build(run)

    def data(self, run: Run, phase: Phase, epochs: int) -> PhaseData:
        """Packed labels with the teacher's answers (phase_inputs); class weights travel as sample weights."""
        teacher = run.memo["teacher"]
        trainer, train, val, steps, fig = phase_inputs(teacher, run.model, run.base, phase, run.config, run.info,
                                                       run.root, run.parts, run.ws, run.class_weight)
        run.memo["paired"] = fig.get("paired", False)
        if run.memo["paired"]:
            run.emit(events.Notice(f"The teacher, {teacher.label}, answers every augmented training image as the "
                                   "student sees it (flipped, rotated...), at each step, so both see the same picture."))
        else:
            run.emit(events.Notice(f"The teacher, {teacher.label}, answered {fig['teacher_images']} images "
                                   f"({fig['teacher_computed']} computed now, the others from its cache)."))
        return PhaseData(trainer, train, val, steps, use_class_weight=False)

    def compile(self, run: Run, trainer: Any, rate: Any) -> None:
        """The distillation loss and the packed accuracy."""
        compile_for(trainer, run.config, rate, paired=run.memo.get("paired", False))

    def finish(self, run_dir: Path, config: RunConfig, train: Train) -> dict[str, Any]:
        """The student alone (if asked) and the verdict in distill_report.json."""
        return finish(config, run_dir, run_dir.parent.parent, train)


METHOD = Distillation()
