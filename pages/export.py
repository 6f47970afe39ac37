"""Export: download a finished run's trained model and its class labels."""

from typing import Any

import streamlit as st

from core import backbones, runs
from pages import _common

EXPORTABLE = ("done", "cancelled")  # a cancelled run keeps the best model it reached


def run_ui(ready: list[runs.RunInfo]) -> runs.RunInfo:
    """Choose a run that has a saved model (the active one first)."""
    by_id = {r.id: r for r in ready}
    key = "export.run"
    if st.session_state.get(key) not in by_id:
        active = st.session_state.get("run_id")
        st.session_state[key] = active if active in by_id else ready[0].id

    def label(run_id: str) -> str:
        r = by_id[run_id]
        parts = [run_id, _common.STATE_WORDS.get(r.state, r.state)]
        if r.config is not None:
            parts.append(backbones.get(r.config.backbone).label)
        return " · ".join(parts)

    return by_id[st.selectbox("Run", list(by_id), key=key, format_func=label)]


def labels_text(run: runs.RunInfo) -> str:
    """labels.txt: one class name per line, in the order of the model's outputs."""
    classes: list[Any] = runs.read_json(run.path / "split.json")["classes"]
    return "".join(f"{name}\n" for name in classes)


def downloads_ui(run: runs.RunInfo) -> None:
    model_file = run.path / "model.keras"
    size = run.config.image_size if run.config else None
    left, right = st.columns(2)
    left.download_button(
        "Download model.keras", data=model_file.read_bytes, file_name="model.keras",
        mime="application/octet-stream", on_click="ignore", type="primary", icon=":material/download:",
        key="export.model", help=f"{model_file.stat().st_size / 2**20:.1f} MB",
    )
    labels = labels_text(run)
    right.download_button(
        "Download labels.txt", data=labels, file_name="labels.txt", mime="text/plain",
        on_click="ignore", icon=":material/download:", key="export.labels",
        help="Classes, in the order of the model's outputs: " + ", ".join(labels.splitlines()),
    )
    st.markdown(
        "**model.keras** is the trained Keras model (Keras 2 / `tf_keras` format). "
        + (f"It takes RGB images resized to **{size}×{size}** pixels with raw pixel values 0-255; " if size else "")
        + "resizing to the right scale is built in, so no other preprocessing is needed. It outputs one "
        "probability per class, in the order of the lines of **labels.txt**."
    )
    if run.config and backbones.get(run.config.backbone).preprocessing == "caffe":
        st.caption("This model uses TransferLab's own preprocessing layer (core/layers.py); "
                   "import that module before loading the model elsewhere.")
    st.code(
        "import numpy as np\nimport tf_keras as keras\nfrom PIL import Image\n\n"
        'model = keras.models.load_model("model.keras", compile=False)\n'
        'labels = open("labels.txt").read().splitlines()\n'
        f'image = Image.open("photo.jpg").convert("RGB").resize(({size or "SIZE"}, {size or "SIZE"}))\n'
        "probabilities = model.predict(np.asarray(image, dtype=np.float32)[None])[0]\n"
        "print(labels[int(probabilities.argmax())])",
        language="python",
    )


def page() -> None:
    ws = _common.workspace()
    st.title("Export")
    ready = [r for r in runs.list_runs(ws)
             if r.state in EXPORTABLE and (r.path / "model.keras").is_file() and (r.path / "split.json").is_file()]
    if not ready:
        st.info("No trained model yet. When a run has finished on the Train page, its model can be downloaded here.")
        _common.link_to("pages/train.py", "Go to the Train page", ":material/monitoring:")
    else:
        run = run_ui(ready)
        if run.state == "cancelled":
            st.caption("This run was cancelled; its model is the best one it reached before stopping, "
                       "and it was not tested.")
        downloads_ui(run)
    st.info("Other formats (TensorFlow SavedModel, TensorFlow Lite for phones) are not available yet.")


_common.guarded(page)
