"""Export: take a finished run's model anywhere; every phone format is measured on the test images."""

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.ship import export, runfiles
from core.spec import backbones
from core.store import runs
from pages import _common, _prune
from pages._serve import serve_ui

# How to use each model file in a few lines (SIZE and FILE are filled in).
USAGE = {
    "keras": (
        "import numpy as np\nimport tf_keras as keras\nfrom PIL import Image\n\n"
        'model = keras.models.load_model("FILE", compile=False)\n'
        'labels = open("labels.txt").read().splitlines()\n'
        'image = Image.open("photo.jpg").convert("RGB").resize((SIZE, SIZE))\n'
        "probabilities = model.predict(np.asarray(image, dtype=np.float32)[None])[0]\n"
        "print(labels[int(probabilities.argmax())])"
    ),
    "savedmodel": (
        "import numpy as np\nimport tensorflow as tf\nfrom PIL import Image\n\n"
        "# unzip savedmodel.zip first\n"
        'serve = tf.saved_model.load("savedmodel").signatures["serving_default"]\n'
        'labels = open("labels.txt").read().splitlines()\n'
        'image = Image.open("photo.jpg").convert("RGB").resize((SIZE, SIZE))\n'
        'probabilities = serve(image=tf.constant(np.asarray(image, dtype=np.float32)[None]))["probabilities"][0]\n'
        "print(labels[int(np.argmax(probabilities))])"
    ),
    "tflite": (
        "import numpy as np\nfrom ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert\n"
        "from PIL import Image\n\n"
        'interpreter = Interpreter(model_path="FILE")\ninterpreter.allocate_tensors()\n'
        "inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]\n"
        'labels = open("labels.txt").read().splitlines()\n'
        'image = np.asarray(Image.open("photo.jpg").convert("RGB").resize((SIZE, SIZE)), dtype=np.float32)[None]\n'
        'if inp["dtype"] != np.float32:  # full-integer model: pixels go in as quantized integers\n'
        '    scale, zero = inp["quantization"]\n'
        '    image = np.clip(np.round(image / scale + zero), 0, 255).astype(inp["dtype"])\n'
        'interpreter.set_tensor(inp["index"], image)\ninterpreter.invoke()\n'
        'scores = interpreter.get_tensor(out["index"])[0]  # the highest score is the answer either way\n'
        "print(labels[int(scores.argmax())])"
    ),
}


def run_ui(ready: list[runs.RunInfo], ws: Path) -> runs.RunInfo:
    """Choose a run that has a saved model (the active one first, else the most accurate of the dataset in hand)."""
    return _common.run_picker(ready, "export.run", "Run", ws=ws,
                              extra=lambda r: [] if r.state == "done" else [_common.STATE_WORDS.get(r.state, r.state)],
                              help="Runs with a saved model. A cancelled run keeps the best model it reached before "
                                   "it stopped.")


def format_ui() -> export.ExportFormat:
    """Choose one of the formats installed here."""
    options = [f.id for f in export.FORMATS.values() if f.available()]
    chosen = st.selectbox("Format", options, format_func=lambda i: export.FORMATS[i].label, key="export.format",
                          help="What to download. TensorFlow Lite is a compact format for phones and small devices; "
                               "its float16 and int8 variants are quantized (numbers stored with fewer bits), smaller "
                               "and faster but possibly a little less accurate. The model card and the training code "
                               "describe how the model was made.")
    fmt = export.FORMATS[chosen]
    st.caption(fmt.sentence)
    return fmt


def download_ui(run: runs.RunInfo, fmt: export.ExportFormat) -> None:
    """Offer the export file, making it first (once) when it does not exist yet."""
    path = export.existing(run.path, fmt.id)
    if path is None and st.button(f"Prepare {fmt.label}", key="export.make", type="primary", icon=":material/build:",
                                  help="Made once and kept with the run, so the next download is immediate."):
        with st.spinner(f"Preparing {fmt.label}… (conversions take up to a minute)"):
            path = export.export(run.path, fmt.id)
    if path is None:
        return
    st.download_button(
        f"Download {path.name}", data=path.read_bytes, file_name=path.name, mime=fmt.mime, on_click="ignore",
        type="primary", icon=":material/download:", key="export.download",
        help=f"{path.stat().st_size / 2**20:.2f} MB, kept in the run's exports folder",
    )
    size = run.config.image_size if run.config else "SIZE"
    usage = USAGE.get("tflite" if fmt.tflite else fmt.id)
    if usage:
        st.markdown(f"The model takes RGB images of **{size}×{size}** pixels with raw values 0-255 (resizing to the "
                    "network's scale is built in) and gives one score per class, in the order of **labels.txt**.")
        with st.expander("How to use it in Python (a few lines of code)"):
            st.code(usage.replace("SIZE", str(size)).replace("FILE", path.name), language="python")
    if fmt.id == "keras" and run.config and backbones.get(run.config.backbone).preprocessing == "caffe":
        st.caption("This model uses TransferLab's own preprocessing layer (core/engine/layers.py); call its "
                   "custom_objects() before loading the .keras file elsewhere, or use the SavedModel or TensorFlow Lite "
                   "export, which need nothing extra.")


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per measured TensorFlow Lite variant."""
    return [
        {
            "variant": export.FORMATS[format_id].label,
            "file": row["file"],
            "size (MB)": row["bytes"] / 2**20,
            "of float32 size": 100 * row["size_vs_float32"],
            "test accuracy": 100 * row["accuracy"],
            "change (points)": row["change_points"],
            "same answer as Keras": 100 * row["agreement"],
            "ms per image": row["ms_per_image"],
        }
        for format_id, row in report["variants"].items()
    ]


def check_ui(run: runs.RunInfo) -> None:
    """The TensorFlow Lite variants side by side, measured on the run's test images."""
    st.subheader("TensorFlow Lite variants, measured")
    st.caption("TensorFlow Lite is the model format for phones and small devices. **Quantization** stores the model's "
               "numbers with fewer bits: float16 about halves the file, int8 (8-bit integers) shrinks it further and "
               "is usually faster, at the risk of a little accuracy; the table below measures both for this model.")
    report = export.cached_report(run.path)
    complete = bool(report) and all(f in report["variants"] for f in export.TFLITE_IDS)
    if not complete and st.button(
        "Make and measure all four variants", key="export.measure", icon=":material/speed:",
        help="Converts the model to the four TensorFlow Lite variants and runs each file on the test images (with "
             "LiteRT, the TensorFlow Lite runtime), to show what the smaller files cost in accuracy and speed.",
    ):
        with st.spinner("Converting and measuring… (about a minute for a typical model)"):
            report = export.report(run.path)
    if not report or not report.get("variants"):
        st.caption("Smaller variants can lose accuracy. Measure them to see the size, the test accuracy and the "
                   "speed of each before you choose.")
        return
    st.dataframe(
        pd.DataFrame(report_rows(report)), hide_index=True, width="stretch",
        column_config={
            "size (MB)": st.column_config.NumberColumn(format="%.2f"),
            # Percentages with one decimal, like the sentences around the table.
            "of float32 size": st.column_config.NumberColumn(format="%.0f%%"),
            "test accuracy": st.column_config.NumberColumn(format="%.1f%%"),
            "change (points)": st.column_config.NumberColumn(
                format="%+.1f", help="Test accuracy minus the float32 file's, in percentage points."),
            "same answer as Keras": st.column_config.NumberColumn(
                format="%.1f%%", help="Test images where the file's top class equals the trained Keras model's."),
            "ms per image": st.column_config.NumberColumn(format="%.2f", help="One image at a time, one CPU thread."),
        },
    )
    sizes = {f: row["size_vs_float32"] for f, row in report["variants"].items() if row.get("size_vs_float32")}
    words = [f"{export.FORMATS[f].label} {share:.0%}" for f, share in sizes.items() if share < 0.999]
    if words:
        st.markdown("Of the float32 file's size, for this model: " + ", ".join(words) + ".")
    keras_row = report.get("keras") or {}
    st.caption(f"Measured on the {report['n']} test images with the LiteRT interpreter on one CPU thread of this "
               f"computer; the Keras model scores {keras_row.get('accuracy', 0):.1%} on them. The full-integer int8 "
               "file takes and returns whole numbers from 0 to 255 (uint8) instead of decimals.")


def more_formats_ui() -> None:
    """Formats whose converters are not installed here, and how to add them."""
    missing = [f for f in export.FORMATS.values() if not f.available()]
    if missing:
        with st.expander("More formats"):
            for f in missing:
                st.markdown(f"**{f.label}** is not installed here. {f.install_note}")


def page() -> None:
    ws = _common.workspace()
    st.title("Export")
    ready = [r for r in runs.list_runs(ws)
             if r.state in runfiles.EXPORTABLE_STATES and (r.path / "model.keras").is_file()
             and (r.path / "split.json").is_file()]
    if not ready:
        st.info("No trained model yet. When a run has finished on the Train page, its model can be exported here.")
        _common.link_to("pages/train.py", "Go to the Train page", ":material/monitoring:")
        more_formats_ui()
        return
    run = run_ui(ready, ws)
    if run.state == "cancelled":
        st.caption("This run was cancelled; its model is the best one it reached before stopping, and it was not tested.")
    fmt = format_ui()
    download_ui(run, fmt)
    check_ui(run)
    serve_ui(run, ws)
    _prune.section(run, ws)
    more_formats_ui()


_common.guarded(page)
