"""Exports of a trained run, each made once into runs/<id>/exports/ and checked against its model.

The formats are data (FORMATS): the Keras file, a SavedModel, four TensorFlow Lite variants,
labels.txt, a model card and the equivalent stand-alone training script; TF.js and ONNX where
their packages are installed. Every TensorFlow Lite variant is measured on the run's test split
with the LiteRT interpreter (report()), so a user sees what quantization costs before taking a
model to a phone. TensorFlow is imported only inside the functions that convert or measure, so
the Export page can list formats and existing files without it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from core import backbones, datasets, features, runs, strategies
from core.config import RunConfig
from core.errors import ExportError, RunStateError, TransferLabError

log = logging.getLogger("transferlab.export")

EXPORTABLE_STATES = ("done", "cancelled")  # a cancelled run keeps the best model it reached
# Images from the training split that calibrate full-integer quantization (TFLite's converter
# needs typical inputs to choose each tensor's range; a few hundred is the usual advice).
REPRESENTATIVE_IMAGES = 200
# Test images a SavedModel / ONNX export must reproduce the Keras model on, at export time.
CHECK_IMAGES = 16
FLOAT_TOLERANCE = 1e-4  # largest difference in any class probability a float export may show
INTERPRETER_THREADS = 1  # latency on one CPU thread: comparable between machines and variants
REPORT = "report.json"


@dataclass(frozen=True)
class TFLiteVariant:
    """How the TensorFlow Lite converter is set for one variant."""

    optimize: bool = False  # post-training quantization of the weights
    float16: bool = False  # weights stored as float16
    integer: bool = False  # every tensor int8, uint8 input and output (needs representative data)


@dataclass(frozen=True)
class ExportFormat:
    """One thing a user can take away from a run."""

    id: str
    label: str
    filename: str  # the file in exports/
    mime: str
    sentence: str  # what it is for, in plain words
    make: Callable[[Path, Path, "ExportFormat"], None]  # (run folder, temporary target, format)
    tflite: TFLiteVariant | None = None
    package: str | None = None  # pip package needed beyond requirements.txt
    module: str | None = None  # its import name
    install_note: str = ""  # how to add the package when it is missing

    def available(self) -> bool:
        """True when everything this format needs is installed."""
        return self.module is None or importlib.util.find_spec(self.module) is not None


# ---------------------------------------------------------------- run data


def exports_dir(run_dir: Path) -> Path:
    """The run's exports/ folder (inside the run folder, like everything a run writes)."""
    return run_dir / "exports"


def _split(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / "split.json").is_file():
        raise RunStateError(f"Run '{run_dir.name}' has not been trained yet, so there is nothing to export.")
    return runs.read_json(run_dir / "split.json")


def check_ready(run_dir: Path) -> None:
    """Raise RunStateError unless the run has a finished, saved model."""
    state = runs.read_status(run_dir).get("state", "unknown")
    if state not in EXPORTABLE_STATES or not (run_dir / "model.keras").is_file():
        raise RunStateError(f"Run '{run_dir.name}' has no finished model to export yet (state: {state}).")
    _split(run_dir)


def classes(run_dir: Path) -> list[str]:
    """Class names in the order of the model's outputs (the training labels are their indices)."""
    return list(_split(run_dir)["classes"])


def labels_text(run_dir: Path) -> str:
    """labels.txt: one class name per line, line i naming output i."""
    return "".join(f"{name}\n" for name in classes(run_dir))


def _dataset_root(run_dir: Path, config: RunConfig) -> Path:
    return datasets.dataset_path(config.dataset_id, run_dir.parent.parent)


def _images(run_dir: Path, part: str, limit: int | None = None, shuffle_seed: int | None = None) -> Any:
    """(float32 0-255 images, labels) batches of one split part, streamed from the dataset folder."""
    config = runs.load_config(run_dir)
    items = [tuple(item) for item in _split(run_dir)[part]]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(items))
        items = [items[i] for i in order]
    items = items[:limit] if limit else items
    if not items:
        raise ExportError(f"The run's {part} split is empty, so the export cannot be checked on it.")
    return datasets.pipeline(_dataset_root(run_dir, config), items, config.image_size, 32, False, config.seed)


def _load_model(run_dir: Path) -> Any:
    from core import modeling

    return modeling.load(run_dir / "model.keras")


# ---------------------------------------------------------------- making exports


def get(format_id: str) -> ExportFormat:
    """The format with this id; ExportError naming the allowed ids otherwise."""
    if format_id not in FORMATS:
        raise ExportError(f"'{format_id}' is not an export format; allowed formats: {', '.join(FORMATS)}.")
    return FORMATS[format_id]


def existing(run_dir: Path, format_id: str) -> Path | None:
    """The export file if it was made already."""
    path = exports_dir(run_dir) / get(format_id).filename
    return path if path.is_file() else None


def export(run_dir: Path, format_id: str) -> Path:
    """The export file of this format: made once into exports/ (atomically), reused afterwards."""
    fmt = get(format_id)
    if not fmt.available():
        raise ExportError(f"The {fmt.label} export needs the '{fmt.package}' package, which is not installed. {fmt.install_note}")
    path = exports_dir(run_dir) / fmt.filename
    if path.is_file():
        return path
    check_ready(run_dir)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fmt.make(run_dir, tmp, fmt)
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    return path


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _make_keras(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    shutil.copyfile(run_dir / "model.keras", target)


def _make_labels(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    target.write_text(labels_text(run_dir), encoding="utf-8")


def _make_card(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    target.write_text(model_card(run_dir), encoding="utf-8")


# Where the code export puts the earlier run's weights file a run started from, next to train.py.
SOURCE_FOLDER = "source_run"
README_CLASSES = 12  # class folders the code export's README draws; CLASS_DIRS in train.py has them all


def _make_code(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    from core import codegen

    config = runs.load_config(run_dir)
    ws = run_dir.parent.parent
    try:
        folder = str(_dataset_root(run_dir, config))
    except TransferLabError:  # the dataset was deleted since: the user names a folder when running it
        folder = "data"
    source = features.source_weights_file(ws, config) if strategies.get(config.strategy).source else None
    # The same generator as the Model page's code; only the weights file is the copy shipped beside it.
    script = codegen.training_script(
        config, folder, source_weights=f"{SOURCE_FOLDER}/{source.name}" if source else None,
        classes=classes(run_dir), ws=ws)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.py", script)
        zf.writestr("README.md", code_readme(run_dir, codegen.shown_folder(folder)))
        zf.write(run_dir / "config.json", "config.json")
        zf.write(run_dir / "split.json", "split.json")
        zf.writestr("labels.txt", labels_text(run_dir))
        if source is not None and source.is_file():
            # Weights barely compress, and a model.keras is a zip already.
            zf.write(source, f"{SOURCE_FOLDER}/{source.name}", compress_type=zipfile.ZIP_STORED)


def _installed_version(*names: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def code_readme(run_dir: Path, data_folder: str) -> str:
    """README.md of the code export: what is in it, what to install, the image folder layout, the command."""
    config = runs.load_config(run_dir)
    ws = run_dir.parent.parent
    spec = backbones.get(config.backbone)
    strategy = strategies.get(config.strategy)
    names = classes(run_dir)
    try:
        dirs = datasets.load_dataset(config.dataset_id, ws).get("class_dirs", {})
    except TransferLabError:
        dirs = {}
    folders = [dirs.get(name, name) for name in names]
    packages = ["tensorflow", "tf_keras"] + (["tensorflow-hub"] if spec.hub_handle else [])
    versions = {"tensorflow": _installed_version("tensorflow", "tensorflow-cpu"), "tf_keras": _installed_version("tf_keras"),
                "tensorflow-hub": _installed_version("tensorflow_hub")}
    pinned = [f"{p}=={versions[p]}" for p in packages if versions.get(p)]
    source = _source_description(config, ws)
    shipped = source is not None and features.source_weights_file(ws, config).is_file()
    lines = [
        f"# Training code for TransferLab run {run_dir.name}",
        "",
        f"`train.py` trains {spec.label} with the {strategy.label.lower()} strategy, with the same settings as the "
        "run (they are in `config.json`, and written out at the top of the script). It needs only TensorFlow.",
        "",
        "In this folder: `train.py` (the script), `config.json` (the run's settings), `labels.txt` (the class names, "
        "line i naming the model's output i), `split.json` (which images the run used for training, validation and "
        "testing)" + (f", `{SOURCE_FOLDER}/` (the weights the run started from)" if shipped else "") + ".",
        "",
        "## 1. Install",
        "",
        "    pip install " + " ".join(packages),
        "",
    ]
    if pinned:
        lines += [f"The run was made with {', '.join(pinned)}; to reproduce it as closely as possible install those "
                  f"versions: `pip install {' '.join(pinned)}`.", ""]
    lines += [
        "## 2. Your images",
        "",
        "One folder per class, holding that class's images (.jpg, .jpeg, .png, .bmp or .gif):",
        "",
        "    data/",
    ]
    for name, folder in list(zip(names, folders))[:README_CLASSES]:
        lines.append(f"      {folder}/" + ("" if folder == name else f"        (class \"{name}\")"))
        lines.append("        photo1.jpg  photo2.png  ...")
    if len(names) > README_CLASSES:
        lines.append(f"      ... {len(names) - README_CLASSES} more (CLASS_DIRS in train.py lists every folder)")
    lines += [
        "",
        "The folder names must be exactly these. To train and test on exactly the run's images, put a copy of "
        "`split.json` inside the image folder: the script then uses its lists (paths relative to the image folder). "
        f"Without it the script draws its own stratified split (seed {config.seed}).",
        "",
        "## 3. Run",
        "",
        "    python train.py DATA_DIR OUT_DIR",
        "",
        f"DATA_DIR defaults to `{data_folder}`" + (" (where the images were when this was exported)"
                                                   if Path(data_folder).is_absolute() else "") + "; OUT_DIR defaults to "
        "`trained`. The script prints each phase and the test accuracy, and writes `OUT_DIR/model.keras` (raw 0-255 "
        "RGB images in, one probability per class out) and `OUT_DIR/labels.txt`.",
    ]
    if config.weights == "imagenet" and not spec.hub_handle:
        lines += ["", f"On its first run Keras downloads {spec.label}'s ImageNet weights into `~/.keras/models`."]
    if spec.hub_handle:
        lines += ["", f"On its first run tensorflow-hub downloads the model `{spec.hub_handle}`."]
    if source is not None:
        file = features.source_weights_file(ws, config)
        where = f"`{SOURCE_FOLDER}/{file.name}`"
        lines += ["", "## Starting weights", "", f"The run started from {source}."]
        if shipped:
            lines.append(f"That file is included as {where}; `train.py` loads it from there (SOURCE_WEIGHTS).")
        else:
            lines.append(f"That file was missing from the workspace when this was exported: fetch "
                         f"`runs/{config.source_run}/{file.relative_to(runs.runs_root(ws) / config.source_run).as_posix()}` "
                         f"from the TransferLab workspace where run {config.source_run} was trained and put it at "
                         f"{where}, next to `train.py`; the script stops with a message until it is there.")
    return "\n".join(lines) + "\n"


def _source_description(config: RunConfig, ws: Path) -> str | None:
    """"run X's weights (its trained backbone), a <backbone> trained on dataset <name>" for a config that starts
    from an earlier run; None for one that does not."""
    how = strategies.get(config.strategy).source
    if how is None:
        return None
    what = "its backbone after its first epoch" if how == "early" else "its trained backbone"
    text = f"run `{config.source_run}`'s weights ({what})"
    try:
        source = runs.load_config(runs.run_path(config.source_run, ws))
    except (TransferLabError, OSError, ValueError):
        return text + "; that run is no longer in this workspace"
    try:
        dataset = f"\"{datasets.load_dataset(source.dataset_id, ws)['name']}\" (`{source.dataset_id}`)"
    except (TransferLabError, OSError, ValueError, KeyError):
        dataset = f"`{source.dataset_id}`"
    return text + f", a {backbones.get(source.backbone).label} trained on dataset {dataset}"


def serving_module(model: Any, image_size: int) -> Any:
    """A plain tf.Module whose one signature maps raw 0-255 RGB `image` to `probabilities`.

    Only the variables and one traced inference function are kept: no Keras objects, so the
    SavedModel loads with tf.saved_model.load on any TensorFlow version and converts in seconds
    (saving the Keras model itself traces every layer and takes ten times longer). Inference mode
    makes the augmentation layers pass images through unchanged.
    """
    import tensorflow as tf

    def serve(image: Any) -> dict[str, Any]:
        return {"probabilities": model(image, training=False)}

    module = tf.Module()
    module.model_variables = list(model.variables)
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="image")
    module.serve = tf.function(serve, input_signature=[spec], autograph=False)
    return module


def savedmodel_dir(run_dir: Path) -> Path:
    """exports/savedmodel/: the SavedModel every converter starts from, made and checked once."""
    import tensorflow as tf

    target = exports_dir(run_dir) / "savedmodel"
    if (target / "saved_model.pb").is_file():
        return target
    check_ready(run_dir)
    config = runs.load_config(run_dir)
    model = _load_model(run_dir)
    module = serving_module(model, config.image_size)
    tmp = target.with_name(f".savedmodel.{secrets.token_hex(4)}.tmp")
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        serve = tf.saved_model.load(str(tmp)).signatures["serving_default"]
        _check_float(run_dir, model, lambda x: serve(image=tf.constant(x))["probabilities"].numpy(), "SavedModel")
        try:
            os.replace(tmp, target)
        except OSError:  # another session finished the same folder first: keep theirs
            if not (target / "saved_model.pb").is_file():
                raise
    finally:
        _remove(tmp)
    return target


def _check_float(run_dir: Path, model: Any, predict: Callable[[np.ndarray], np.ndarray], label: str) -> None:
    """Refuse an export whose class probabilities differ from the Keras model's on test images."""
    images = next(iter(_images(run_dir, "test", CHECK_IMAGES)))[0].numpy()
    diff = float(np.abs(predict(images) - model(images, training=False).numpy()).max())
    if not diff <= FLOAT_TOLERANCE:
        raise ExportError(
            f"The {label} export does not reproduce the trained model (probabilities differ by up to {diff:.2g}), "
            "so it was not kept."
        )


def _make_savedmodel(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    source = savedmodel_dir(run_dir)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, f"savedmodel/{path.relative_to(source).as_posix()}")
        zf.writestr("labels.txt", labels_text(run_dir))


def _representative(run_dir: Path) -> Callable[[], Any]:
    """Typical inputs for calibration: training images (never test images), one at a time."""
    config = runs.load_config(run_dir)
    ds = _images(run_dir, "train", REPRESENTATIVE_IMAGES, shuffle_seed=config.seed).unbatch().batch(1)

    def generate() -> Any:
        for images, _ in ds:
            yield [images]

    return generate


def convert_tflite(saved_model: Path, variant: TFLiteVariant, representative: Callable[[], Any] | None = None) -> bytes:
    """A SavedModel converted to TensorFlow Lite as the variant says (full integer needs representative data)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant.float16:
        converter.target_spec.supported_types = [tf.float16]
    if variant.integer:
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8 in and out, as Teachable Machine's and most edge examples expect: the input
        # scale comes out as ~1, so the raw pixel bytes go straight in.
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def _make_tflite(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    variant = fmt.tflite or TFLiteVariant()
    source = savedmodel_dir(run_dir)
    try:
        content = convert_tflite(source, variant, _representative(run_dir) if variant.integer else None)
    except TransferLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - converter errors are long MLIR dumps: log them, say one sentence
        log.exception("TFLite conversion failed for %s (%s)", run_dir.name, fmt.id)
        raise ExportError(
            f"Converting this model to {fmt.label} failed ({type(exc).__name__}); the other formats are not affected."
        ) from None
    target.write_bytes(content)


def _make_tfjs(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    with _scratch(run_dir) as work:
        _convert_cli(["tensorflowjs_converter", "--input_format=tf_saved_model", "--signature_name=serving_default",
                      str(savedmodel_dir(run_dir)), str(work)], fmt)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(work.rglob("*")):
                if path.is_file():
                    zf.write(path, f"tfjs_model/{path.relative_to(work).as_posix()}")
            zf.writestr("labels.txt", labels_text(run_dir))


def _make_onnx(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    _convert_cli([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(savedmodel_dir(run_dir)),
                  "--signature_def", "serving_default", "--output", str(target)], fmt)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        _check_float(run_dir, _load_model(run_dir), lambda x: session.run(None, {name: x})[0], fmt.label)


@contextmanager
def _scratch(run_dir: Path) -> Iterator[Path]:
    """A temporary folder inside exports/ (a run writes only inside its own folder)."""
    path = exports_dir(run_dir) / f".work.{secrets.token_hex(4)}.tmp"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        _remove(path)


def _convert_cli(command: list[str], fmt: ExportFormat) -> None:
    """Run an external converter; its output goes to the log, one sentence to the user."""
    if command[0] != sys.executable and shutil.which(command[0]) is None:
        raise ExportError(f"The {fmt.label} converter '{command[0]}' is not on the PATH. {fmt.install_note}")
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    if proc.returncode != 0:
        log.error("%s failed:\n%s", command[0], proc.stderr[-4000:])
        raise ExportError(f"The {fmt.label} converter failed; the details are in the server log.")


# ---------------------------------------------------------------- measuring TFLite variants


def _interpreter(path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ExportError("Measuring TensorFlow Lite files needs the LiteRT interpreter; install it with: "
                          "pip install ai-edge-litert") from None

    interpreter = Interpreter(model_path=str(path), num_threads=INTERPRETER_THREADS)
    interpreter.allocate_tensors()
    return interpreter


def _invoke(interpreter: Any, image: np.ndarray) -> np.ndarray:
    """Class probabilities for one float 0-255 image, quantizing in and out where the model is integer."""
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    x = image[None].astype(np.float32)
    if np.issubdtype(inp["dtype"], np.integer):
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])[0]
    if np.issubdtype(out["dtype"], np.integer):
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities of a .tflite file for a batch of float 0-255 images (LiteRT interpreter)."""
    interpreter = _interpreter(path)
    return np.stack([_invoke(interpreter, image) for image in images])


def cached_report(run_dir: Path) -> dict[str, Any] | None:
    """exports/report.json as last written, without measuring anything."""
    path = exports_dir(run_dir) / REPORT
    try:
        return runs.read_json(path)
    except (OSError, ValueError):
        return None


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def report(run_dir: Path, format_ids: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Size, test accuracy, change against float32, agreement with Keras and latency per TFLite variant.

    Variants are exported first if needed; measurements are cached in exports/report.json and
    reused while their file is unchanged. float32 is always measured: it is the baseline.
    """
    wanted = ["tflite", *[f for f in (format_ids or TFLITE_IDS) if f != "tflite"]]
    for format_id in wanted:
        if get(format_id).tflite is None:
            raise ExportError(f"'{format_id}' is not a TensorFlow Lite format; choose one of {', '.join(TFLITE_IDS)}.")
    paths = {f: export(run_dir, f) for f in wanted}
    cached = cached_report(run_dir) or {}
    # Keep only measurements whose file is still the one measured.
    variants: dict[str, Any] = {
        f: row for f, row in cached.get("variants", {}).items()
        if (exports_dir(run_dir) / row.get("file", "")).is_file() and row.get("stamp") == _stamp(exports_dir(run_dir) / row["file"])
    }
    stale = [f for f in wanted if f not in variants or "keras" not in cached]
    keras_row = cached.get("keras")
    n = cached.get("n")
    if stale:
        measured, keras_row, n = _measure(run_dir, {f: paths[f] for f in stale})
        variants.update(measured)
    base = variants["tflite"]
    for format_id, row in variants.items():
        row["change_points"] = round(100 * (row["accuracy"] - base["accuracy"]), 2)
        row["size_vs_float32"] = round(row["bytes"] / base["bytes"], 4)
    result = {
        "split": "test", "n": n, "threads": INTERPRETER_THREADS, "keras": keras_row,
        "variants": {f: variants[f] for f in TFLITE_IDS if f in variants},
    }
    runs.write_json(exports_dir(run_dir) / REPORT, result)
    return result


def _measure(run_dir: Path, paths: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """One pass over the test split: Keras predictions, then every variant image by image."""
    model = _load_model(run_dir)
    interpreters = {f: _interpreter(p) for f, p in paths.items()}
    seconds = {f: 0.0 for f in paths}
    probs: dict[str, list[np.ndarray]] = {f: [] for f in paths}
    keras_probs, labels, keras_seconds = [], [], 0.0
    warm = False
    for images, y in _images(run_dir, "test"):
        batch = images.numpy()
        if not warm:  # the first call of each traces or allocates: not part of the latency
            model(batch[:1], training=False)
            for interpreter in interpreters.values():
                _invoke(interpreter, batch[0])
            warm = True
        started = time.perf_counter()
        keras_probs.append(model(batch, training=False).numpy())
        keras_seconds += time.perf_counter() - started
        labels.append(y.numpy())
        for format_id, interpreter in interpreters.items():
            for image in batch:
                started = time.perf_counter()
                probs[format_id].append(_invoke(interpreter, image))
                seconds[format_id] += time.perf_counter() - started
    y_true = np.concatenate(labels)
    reference = np.concatenate(keras_probs)
    n = len(y_true)
    rows = {}
    for format_id, path in paths.items():
        p = np.stack(probs[format_id])
        inp = interpreters[format_id].get_input_details()[0]
        rows[format_id] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "stamp": _stamp(path),
            "input_type": np.dtype(inp["dtype"]).name,
            "accuracy": round(float((p.argmax(1) == y_true).mean()), 6),
            "agreement": round(float((p.argmax(1) == reference.argmax(1)).mean()), 6),
            "max_abs_diff": round(float(np.abs(p - reference).max()), 6),
            "ms_per_image": round(1000 * seconds[format_id] / n, 3),
        }
    keras_row = {
        "accuracy": round(float((reference.argmax(1) == y_true).mean()), 6),
        "ms_per_image": round(1000 * keras_seconds / n, 3),
        "bytes": (run_dir / "model.keras").stat().st_size,
    }
    return rows, keras_row, n


# ---------------------------------------------------------------- model card

# eval.json keys that are not metrics (or are shown in their own section of the card).
_NOT_METRICS = ("split", "n", "classes", "predictions", "per_class", "confusion_matrix")


def _metric_rows(evaluation: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Every metric of eval.json by its own name (nested ones as 'key sub-key'), and the keys of data too
    large for a table (curves), which the card names without showing."""
    rows: list[tuple[str, str]] = []
    other: list[str] = []
    for key, value in evaluation.items():
        if key in _NOT_METRICS or key.endswith("_note"):
            continue
        if _is_number(value):
            rows.append((f"`{key}`", f"{value:.4g}"))
        elif value is None:
            note = evaluation.get(f"{key}_note")
            rows.append((f"`{key}`", "not defined" + (f": {note}" if note else "")))
        elif isinstance(value, dict):
            rows += [(f"`{key}` {sub}", f"{v:.4g}") for sub, v in value.items() if _is_number(v)]
        else:
            other.append(key)
    return rows, other


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a test accuracy measured on n images."""
    from scipy.stats import binomtest

    ci = binomtest(int(round(accuracy * n)), n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def model_card(run_dir: Path) -> str:
    """A markdown model card: data, configuration, every metric in eval.json, intended use and limits."""
    config = runs.load_config(run_dir)
    split = _split(run_dir)
    names = split["classes"]
    status = runs.read_status(run_dir)
    spec = backbones.get(config.backbone)
    strategy = strategies.get(config.strategy)
    evaluation = runs.read_json(run_dir / "eval.json") if (run_dir / "eval.json").is_file() else None
    try:
        info: dict[str, Any] | None = datasets.load_dataset(config.dataset_id, run_dir.parent.parent)
    except TransferLabError:
        info = None
    counts = {part: [0] * len(names) for part in ("train", "val", "test")}
    for part in counts:
        for _, label in split[part]:
            counts[part][label] += 1

    lines = [f"# Model card: {info['name'] if info else config.dataset_id} image classifier", ""]
    lines += [
        f"Trained with TransferLab, run `{run_dir.name}` ({time.strftime('%Y-%m-%d', time.localtime(status.get('finished', status.get('created', 0))))}).",
        "",
        "## Model",
        "",
        f"- Classifies an image into one of {len(names)} classes: {', '.join(names)}.",
        f"- Backbone: {spec.label} (`{spec.id}`), {_weights_sentence(config, run_dir.parent.parent)}.",
        f"- Transfer strategy: {strategy.label} (`{strategy.id}`): {strategy.sentence}",
        f"- Input: RGB images of {config.image_size}×{config.image_size} pixels, raw values 0-255 (the "
        "preprocessing is inside the model). Output: one probability per class, in the order of `labels.txt`.",
        "",
        "## Data",
        "",
        f"Dataset `{config.dataset_id}`" + (f" (\"{info['name']}\", imported from {info.get('source', 'unknown')})" if info else "")
        + ". Images per class and split (training / validation / test):",
        "",
        "| class | train | validation | test |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {counts['train'][i]} | {counts['val'][i]} | {counts['test'][i]} |" for i, name in enumerate(names)]
    lines += ["", "The test images were never used for training or for choosing the best epoch.", ""]
    lines += ["## Training configuration", "", "| setting | value |", "|---|---|"]
    lines += [f"| `{key}` | {value} |" for key, value in _flat(json.loads(config.to_json()))]
    lines += ["", "## Metrics", ""]
    limits = []
    if evaluation is None:
        lines.append("This run was not evaluated on its test images (it was cancelled before the end), so there are "
                     "no test metrics.")
        limits.append("The model was never measured on held-out images: its accuracy is unknown.")
    else:
        n = int(evaluation.get("n", sum(counts["test"])))
        lines += [f"Measured on the {n} test images (`eval.json`).", "", "| metric | value |", "|---|---:|"]
        rows, other = _metric_rows(evaluation)
        lines += [f"| {name} | {value} |" for name, value in rows]
        if other:
            lines += ["", "Also in eval.json: " + ", ".join(f"`{key}`" for key in other) + "."]
        if evaluation.get("per_class"):
            auc = any("auc" in r for r in evaluation["per_class"])
            lines += ["", "Per class (`per_class`):", "",
                      "| class | precision | recall | F1 |" + (" AUC |" if auc else "") + " test images |",
                      "|---|---:|---:|---:|" + ("---:|" if auc else "") + "---:|"]
            lines += [f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |"
                      + (f" {r['auc']:.3f} |" if auc and _is_number(r.get("auc")) else " - |" if auc else "")
                      + f" {r['support']} |" for r in evaluation["per_class"]]
        if evaluation.get("confusion_matrix"):
            lines += ["", "Confusion matrix (`confusion_matrix`; rows: true class, columns: predicted class):", "",
                      "| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                      for name, row in zip(names, evaluation["confusion_matrix"])]
        if "accuracy" in evaluation and n:
            low, high = _accuracy_interval(float(evaluation["accuracy"]), n)
            limits.append(f"The test accuracy of {evaluation['accuracy']:.1%} comes from {n} images; with so many, the "
                          f"true accuracy on similar images plausibly lies between {low:.1%} and {high:.1%} (95% Wilson interval).")
        weakest = min(evaluation.get("per_class") or [], key=lambda r: r["f1"], default=None)
        if weakest is not None and len(names) > 1:
            limits.append(f"The weakest class is '{weakest['class']}' (F1 {weakest['f1']:.2f}): expect more mistakes on it.")
    lines += [
        "",
        "## Intended use",
        "",
        f"Sorting or pre-screening photos that look like the training images into the classes {', '.join(names)}, "
        "with a person checking the results that matter. Good for teaching, prototyping, and tasks where an "
        "occasional mistake is cheap.",
        "",
        "Not intended for decisions about people, for medical, legal or safety-critical use, or for images unlike "
        "the training photos.",
        "",
        "## Limitations",
        "",
        f"- The model always answers with one of its {len(names)} classes, even for an image that shows none of "
        "them; a high probability is not proof that the image belongs to any class.",
        f"- It learned from {sum(counts['train'])} training images. Photos taken differently (lighting, camera, "
        "background, framing) can be classified worse than the test figures suggest.",
        f"- Images are shrunk to {config.image_size}×{config.image_size} pixels: details smaller than that are lost.",
    ]
    lines += [f"- {text}" for text in limits]
    if info:
        lines += [f"- Data warning from the import: {w}" for w in info.get("warnings", [])]
    if spec.hub_handle:
        lines.append(f"- The backbone was pretrained by the publisher of `{spec.hub_handle}` and carries the gaps and "
                     "biases of the images it was trained on.")
    elif config.weights == "imagenet":
        lines.append("- The backbone was pretrained on ImageNet photos and carries that collection's gaps and biases.")
    elif config.weights == "run":
        lines.append(f"- The backbone started from run `{config.source_run}`: what that run's images taught it, their "
                     "gaps and biases included, carries over.")
    lines.append("")
    return "\n".join(lines)


def _weights_sentence(config: RunConfig, ws: Path) -> str:
    """Where the backbone's starting weights came from, for the model card."""
    spec = backbones.get(config.backbone)
    if spec.hub_handle:
        return f"weights `{config.weights}`: pretrained, from the TF Hub model `{spec.hub_handle}`"
    if config.weights == "imagenet":
        return "weights `imagenet` (pretrained on ImageNet)"
    if config.weights == "run":
        return f"weights `run`: the network started from {_source_description(config, ws)}"
    return f"weights `{config.weights}`: trained from scratch, starting from random weights (no pretraining)"


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((prefix + key, value))
    return out


# ---------------------------------------------------------------- the registry

FORMATS: dict[str, ExportFormat] = {
    f.id: f
    for f in (
        ExportFormat("keras", "Keras model (.keras)", "model.keras", "application/octet-stream",
                     "The trained model as TransferLab saved it, for Python with TensorFlow and tf_keras.", _make_keras),
        ExportFormat("savedmodel", "TensorFlow SavedModel (.zip)", "savedmodel.zip", "application/zip",
                     "A zipped SavedModel folder with one `serving_default` signature, for TensorFlow Serving, "
                     "tf.saved_model.load and other converters; checked against the trained model.", _make_savedmodel),
        ExportFormat("tflite", "TensorFlow Lite, float32", "model_float32.tflite", "application/octet-stream",
                     "For phones and small devices, as exact as the original.", _make_tflite, TFLiteVariant()),
        ExportFormat("tflite-fp16", "TensorFlow Lite, float16", "model_float16.tflite", "application/octet-stream",
                     "Half the size of float32, nearly always the same answers; fast on phone GPUs.",
                     _make_tflite, TFLiteVariant(optimize=True, float16=True)),
        ExportFormat("tflite-dynamic", "TensorFlow Lite, dynamic-range int8", "model_dynamic_int8.tflite",
                     "application/octet-stream",
                     "Weights stored as 8-bit integers: about a quarter of the size, computed in float on the device.",
                     _make_tflite, TFLiteVariant(optimize=True)),
        ExportFormat("tflite-int8", "TensorFlow Lite, full integer int8", "model_int8.tflite", "application/octet-stream",
                     "Everything in 8-bit integers with uint8 input and output: the smallest and fastest, for "
                     "microcontrollers and Edge TPUs; calibrated on training images.",
                     _make_tflite, TFLiteVariant(optimize=True, integer=True)),
        ExportFormat("labels", "Labels (labels.txt)", "labels.txt", "text/plain",
                     "The class names, one per line, in the order of the model's outputs.", _make_labels),
        ExportFormat("card", "Model card (.md)", "model_card.md", "text/markdown",
                     "A one-page description: data, settings, test metrics, intended use and limitations.", _make_card),
        ExportFormat("code", "Training code (.zip)", "training_code.zip", "application/zip",
                     "The stand-alone Python training script the Model page shows (train.py, needs only TensorFlow) "
                     "with config.json, labels.txt, the run's split.json, a README on how to run it, and the weights "
                     "the run started from when it started from an earlier run.",
                     _make_code),
        ExportFormat("tfjs", "TensorFlow.js (.zip)", "tfjs_model.zip", "application/zip",
                     "For web pages (TensorFlow.js graph model); not checked here, as there is no browser runtime.",
                     _make_tfjs, package="tensorflowjs", module="tensorflowjs",
                     install_note="The tensorflowjs package pins its own TensorFlow version, so install it in a separate "
                                  "environment (pip install tensorflowjs) and convert the SavedModel export there: "
                                  "tensorflowjs_converter --input_format=tf_saved_model savedmodel/ web_model/"),
        ExportFormat("onnx", "ONNX (.onnx)", "model.onnx", "application/octet-stream",
                     "For ONNX Runtime and other frameworks; checked against the trained model when onnxruntime is installed.",
                     _make_onnx, package="tf2onnx", module="tf2onnx",
                     install_note="Add it with: pip install tf2onnx (and onnxruntime to check the export)."),
    )
}
TFLITE_IDS: tuple[str, ...] = tuple(f.id for f in FORMATS.values() if f.tflite is not None)
