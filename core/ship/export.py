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

from core import settings
from core.engine import features, methods, texts
from core.engine import inputs as model_inputs
from core.errors import ExportError, TransferLabError
from core.ship import card, codegen, runfiles, serving
from core.ship.runfiles import check_ready, classes, exports_dir, labels_text
from core.spec import strategies
from core.store import runs
from core.store.files import read_json, write_json

log = logging.getLogger("transferlab.export")

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
    runs.sweep_scratch(path.parent, f".{path.name}.")  # exports whose process was killed
    tmp = path.with_name(f"{runs.scratch_prefix(f'.{path.name}.')}{secrets.token_hex(4)}.tmp")
    try:
        fmt.make(run_dir, tmp, fmt)
        settings.fault("export")  # the file is made under its temporary name
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
    target.write_text(card.model_card(run_dir), encoding="utf-8")


# Where the code export puts the earlier run's weights file a run started from, next to train.py.
SOURCE_FOLDER = "source_run"


def _make_code(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    config = runs.load_config(run_dir)
    ws = run_dir.parent.parent
    try:
        folder = str(runfiles.dataset_root(run_dir, config))
    except TransferLabError:  # the dataset was deleted since: the user names a folder when running it
        folder = "data"
    source = features.source_weights_file(ws, config) if strategies.get(config.strategy).source else None
    if source is None and methods.of(config).ships_source_run and config.source_run:
        source = runs.runs_root(ws) / config.source_run / "model.keras"  # the source run or teacher ships too
    # The same generator as the Model page's code; only the weights file is the copy shipped beside it.
    script = codegen.training_script(
        config, folder, source_weights=f"{SOURCE_FOLDER}/{source.name}" if source else None,
        classes=classes(run_dir), ws=ws)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train.py", script)
        zf.writestr("README.md", card.code_readme(run_dir, codegen.shown_folder(folder), SOURCE_FOLDER))
        zf.write(run_dir / "config.json", "config.json")
        zf.write(run_dir / "split.json", "split.json")
        zf.writestr("labels.txt", labels_text(run_dir))
        if source is not None and source.is_file():
            # Weights barely compress, and a model.keras is a zip already.
            zf.write(source, f"{SOURCE_FOLDER}/{source.name}", compress_type=zipfile.ZIP_STORED)


def serving_module(model: Any, image_size: int, input_spec: Any = None) -> Any:
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
    # The run's kind says its input (core.engine.inputs.tensor_spec); raw images when none is given.
    spec = input_spec or tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="image")
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
    model = runfiles.load_model(run_dir)
    spec, feed = model_inputs.tensor_spec(config), lambda x: x
    by_ids = texts.token_model(model)  # WordLlama's tokenizer cannot run inside TensorFlow: the export takes ids
    if by_ids is not None:
        spec = tf.TensorSpec([None, None], tf.int32, name=texts.TOKEN_IDS)
        feed = lambda x: texts.token_ids([t.decode("utf-8") for t in x])  # noqa: E731
    module = serving_module(by_ids or model, config.image_size, spec)
    tmp = target.with_name(f".savedmodel.{secrets.token_hex(4)}.tmp")
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        serve = tf.saved_model.load(str(tmp)).signatures["serving_default"]
        # The signature's input is named by the run's kind ("image", "waveform"; token ids for WordLlama texts).
        _check_float(run_dir, model, lambda x: serve(**{spec.name: tf.constant(feed(x))})["probabilities"].numpy(),
                     "SavedModel")
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
    images = next(iter(runfiles.part_images(run_dir, "test", CHECK_IMAGES)))[0].numpy()
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
        if _takes_token_ids(run_dir):  # the tokenizer and a wrapper travel with it
            zf.write(texts.tokenizer_file(), "tokenizer.json")
            zf.writestr("predict_texts.py", texts.WRAPPER)


def _takes_raw_text(run_dir: Path) -> bool:
    """Whether the run's model reads raw strings (a text run; images and sounds never do)."""
    config = runs.load_config(run_dir)
    return model_inputs.of_config(config).signature(config.image_size)[1] == "string"


def _takes_token_ids(run_dir: Path) -> bool:
    """Whether the run's exports take WordLlama token ids instead of texts (the model is opened for text runs only)."""
    return _takes_raw_text(run_dir) and texts.token_model(runfiles.load_model(run_dir)) is not None


def _representative(run_dir: Path, by_ids: bool) -> Callable[[], Any]:
    """Typical inputs for calibration: training images (never test images), one at a time; for a model exported
    from token ids (WordLlama texts), the ids of training texts."""
    config = runs.load_config(run_dir)
    ds = runfiles.part_images(run_dir, "train", REPRESENTATIVE_IMAGES, shuffle_seed=config.seed).unbatch().batch(1)
    feed = (lambda x: texts.token_ids([t.decode("utf-8") for t in x.numpy()])) if by_ids else (lambda x: x)

    def generate() -> Any:
        for images, _ in ds:
            yield [feed(images)]

    return generate


def convert_tflite(saved_model: Path, variant: TFLiteVariant, representative: Callable[[], Any] | None = None,
                   sparse: bool = False, float_layers: tuple[str, ...] = ()) -> bytes:
    """A SavedModel converted to TensorFlow Lite as the variant says (full integer needs representative data).

    sparse: the model was pruned, so the converter also stores its mostly-zero weights in TFLite's sparse format.
    float_layers: layers a full-integer file keeps in float (the kind's InputKind.float_layers); then its input and
    output stay float32 too, and everything after those layers is int8 (TFLite's selective quantization).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if sparse:
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if variant.float16:
        converter.target_spec.supported_types = [tf.float16]
    if variant.integer and float_layers:
        converter.representative_dataset = representative
        nodes = _nodes_of(tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert(), float_layers)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes))
        return debugger.get_nondebug_quantized_model()
    if variant.integer:
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8 in and out, as Teachable Machine's and most edge examples expect: the input
        # scale comes out as ~1, so the raw pixel bytes go straight in.
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def _nodes_of(float_model: bytes, layers: tuple[str, ...]) -> list[str]:
    """The names of a float TFLite model's tensors made inside the given Keras layers."""
    from ai_edge_litert.interpreter import Interpreter

    names = [t["name"] for t in Interpreter(model_content=float_model).get_tensor_details()]
    return [n for n in names if any(f"/{layer}/" in n for layer in layers)]


NO_TFLITE_TEXT = ("TensorFlow Lite has no built-in operations for this model's own text preparation (lower-casing, "
                  "splitting into words, hashing them), so it cannot become a .tflite file; use the SavedModel or "
                  "TF Serving export, or train on the WordLlama encoder, whose TFLite files take token ids.")


def _make_tflite(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    by_ids = _takes_token_ids(run_dir)
    if _takes_raw_text(run_dir) and not by_ids:
        raise ExportError(NO_TFLITE_TEXT)
    config = runs.load_config(run_dir)
    variant = fmt.tflite or TFLiteVariant()
    source = savedmodel_dir(run_dir)
    try:
        representative = _representative(run_dir, by_ids) if variant.integer else None
        sparse = bool(runs.read_status(run_dir).get("pruned_from"))  # a pruned run (pruning.py)
        float_layers = model_inputs.of_config(config).float_layers
        content = convert_tflite(source, variant, representative, sparse=sparse, float_layers=float_layers)
        if sparse and not _runs_in_litert(content):
            # LiteRT's default CPU delegate (XNNPACK) refuses some sparse kernels (int8 ones): keep the
            # dense layout, whose zeros still compress when the file is gzipped.
            log.info("%s: the sparse %s file does not run in LiteRT; converted without the sparse format",
                     run_dir.name, fmt.id)
            content = convert_tflite(source, variant, representative, float_layers=float_layers)
    except TransferLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - converter errors are long MLIR dumps: log them, say one sentence
        log.exception("TFLite conversion failed for %s (%s)", run_dir.name, fmt.id)
        raise ExportError(
            f"Converting this model to {fmt.label} failed ({type(exc).__name__}); the other formats are not affected."
        ) from None
    target.write_bytes(content)


def _runs_in_litert(content: bytes) -> bool:
    """True when LiteRT's default interpreter can prepare this TFLite model (or LiteRT is not installed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return True
    try:
        Interpreter(model_content=content, num_threads=INTERPRETER_THREADS).allocate_tensors()
    except (RuntimeError, ValueError):
        return False
    return True


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
        _check_float(run_dir, runfiles.load_model(run_dir), lambda x: session.run(None, {name: x})[0], fmt.label)


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
    if isinstance(image, (bytes, str)):  # a text: a WordLlama export takes its token ids (core.engine.texts)
        ids = texts.token_ids([image.decode("utf-8") if isinstance(image, bytes) else image])
        interpreter.resize_tensor_input(inp["index"], ids.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], ids)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0].astype(np.float32)
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
        return read_json(path)
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
    for row in variants.values():
        row["change_points"] = round(100 * (row["accuracy"] - base["accuracy"]), 2)
        row["size_vs_float32"] = round(row["bytes"] / base["bytes"], 4)
    result = {
        "split": "test", "n": n, "threads": INTERPRETER_THREADS, "keras": keras_row,
        "variants": {f: variants[f] for f in TFLITE_IDS if f in variants},
    }
    write_json(exports_dir(run_dir) / REPORT, result)
    return result


def _measure(run_dir: Path, paths: dict[str, Path]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """One pass over the test split: Keras predictions, then every variant image by image."""
    model = runfiles.load_model(run_dir)
    interpreters = {f: _interpreter(p) for f, p in paths.items()}
    seconds = {f: 0.0 for f in paths}
    probs: dict[str, list[np.ndarray]] = {f: [] for f in paths}
    keras_probs, labels, keras_seconds = [], [], 0.0
    warm = False
    for images, y in runfiles.part_images(run_dir, "test"):
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


def _example_image(run_dir: Path) -> np.ndarray:
    """One of the run's own images (a test image where there is one), as the model takes it."""
    for part in ("test", "val", "train"):
        try:
            return next(iter(runfiles.part_images(run_dir, part, 1)))[0].numpy()[0]
        except ExportError:
            continue
    raise ExportError(f"Run '{run_dir.name}' has no images left in its split to make an example request from.")


def _example_request(run_dir: Path, serve: Any) -> tuple[str, dict[str, Any]]:
    """request.json for the tf-serving export, as the SavedModel takes it, and the same input as its tensors:
    one of the run's pixel arrays or clips, a text as a string ({"instances": ["a text"]}), or the text's
    WordLlama token ids where the tokenizer cannot run inside TensorFlow."""
    import tensorflow as tf

    (input_name, spec), = serve.structured_input_signature[1].items()
    example = _example_image(run_dir)
    if spec.dtype == tf.string:
        text = example.decode("utf-8") if isinstance(example, bytes) else str(example)
        body = json.dumps({"instances": [text]}, ensure_ascii=False)
    elif spec.dtype.is_integer:  # token ids: the text through the tokenizer that ships beside the model
        text = example.decode("utf-8") if isinstance(example, bytes) else str(example)
        body = json.dumps({"instances": texts.token_ids([text]).tolist()}, separators=(",", ":"))
    else:
        body = serving.request_json(example)
    return body, {input_name: tf.constant(json.loads(body)["instances"], spec.dtype)}


def _tf_serving_readme(run_dir: Path, serve: Any, name: str, labels: list[str], example: str) -> str:
    """The tf-serving README in the words of what the SavedModel takes (pixels or clips, texts, token ids)."""
    import tensorflow as tf

    (input_name, spec), = serve.structured_input_signature[1].items()
    size = runs.load_config(run_dir).image_size
    if spec.dtype == tf.string or spec.dtype.is_integer:
        return serving.tf_serving_readme_text(name, labels, input_name, spec.dtype.is_integer, size, example)
    return serving.tf_serving_readme(name, labels, size, example)


def _make_tf_serving(run_dir: Path, target: Path, fmt: ExportFormat) -> None:
    """tf_serving/NAME/1/ (the checked SavedModel, version 1) with labels, README and a ready request.json."""
    import tensorflow as tf

    source = savedmodel_dir(run_dir)
    name, labels = serving.default_name(run_dir), classes(run_dir)
    # The answer the README promises for request.json, from the very files that ship.
    serve = tf.saved_model.load(str(source)).signatures[serving.SIGNATURE]
    body, feed = _example_request(run_dir, serve)
    probs = serve(**feed)[serving.OUTPUT].numpy()[0]
    example = f"{labels[int(probs.argmax())]} ({probs.max():.3f})"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, f"tf_serving/{name}/{serving.VERSION}/{path.relative_to(source).as_posix()}")
        zf.writestr("tf_serving/labels.txt", labels_text(run_dir))
        zf.writestr("tf_serving/request.json", body)
        zf.writestr("tf_serving/README.md", _tf_serving_readme(run_dir, serve, name, labels, example))


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
                     "microcontrollers and Edge TPUs; calibrated on training images. (A sound model keeps its "
                     "log-mel front end, its waveform input and its output in float.)",
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
        ExportFormat("tf-serving", "TensorFlow Serving (.zip)", "tf_serving.zip", "application/zip",
                     "The SavedModel in the folder layout TensorFlow Serving loads as it is (NAME/1/), with a README "
                     "holding the docker command, a curl example and a ready request.json.", _make_tf_serving),
    )
}
TFLITE_IDS: tuple[str, ...] = tuple(f.id for f in FORMATS.values() if f.tflite is not None)
