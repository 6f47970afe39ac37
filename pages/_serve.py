"""The Export page's "Use it from another program": the serve command for a run, curl lines, a ten-line
Python client and the TensorFlow Serving lines, each filled in with the run's name and labels."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import settings
from core.ship import runfiles, serving
from core.store import runs
from pages import _common


def serve_ui(run: runs.RunInfo, ws: Path) -> None:
    """How another program asks this run's model, over TensorFlow Serving's REST API."""
    st.subheader("Use it from another program")
    st.caption("TransferLab can answer other programs over the network: a script, a website's back end or a form "
               "sends an image and gets the labels with their probabilities back, in the format TensorFlow Serving "
               "uses. Use it when another program should classify images without running TensorFlow itself.")
    name = serving.default_name(run.path)
    labels = runfiles.classes(run.path)
    size = run.config.image_size if run.config else 224
    key = st.toggle("Require a key", value=settings.serve_key() is not None, key="serve.key",
                    help="With TL_SERVE_KEY set, the server answers only requests that carry the key "
                         "(header 'Authorization: Bearer KEY'). Set one whenever other computers can reach it.")
    examples = serving.client_examples(name, labels, size, key=key)
    if _common.hosted():
        st.info("On this shared server you cannot start programs. Download the TensorFlow Serving export (choose it "
                "under Format above) and serve it on your own computer with the lines under 'TensorFlow Serving'.")
    else:
        command = serving.serve_command(run.id, name, None if ws == settings.workspace_dir() else str(ws))
        if key:
            command = "export TL_SERVE_KEY=choose-a-long-secret\n" + command
        st.markdown(f"**1. Start the server** on this computer; it serves this run as **{name}** on port "
                    f"{serving.DEFAULT_PORT} and answers only programs on this computer (add `--host 0.0.0.0` to "
                    "let other computers in, and read the README's 'Serving' section first). Stop it with Ctrl-C.")
        st.code(command, language="bash")
        st.markdown(f"**2. Ask it**, from a terminal or a program. Images of any size are resized to {size}×{size}; "
                    f"the answer holds one probability per label: {', '.join(labels)}.")
    curl, python, docker = st.tabs(["curl", "Python", "TensorFlow Serving (Docker)"])
    with curl:
        st.code(examples["curl"], language="bash")
    with python:
        st.code(examples["python"], language="python")
        st.caption("Only Python's standard library: copy it into a file beside photo.jpg and run it.")
    with docker:
        st.markdown("TensorFlow Serving's own server can load this model as it is: choose **TensorFlow Serving "
                    "(.zip)** under Format above, download it, then:")
        st.code(serving.docker_lines(name, size), language="bash")
        st.caption(f"TensorFlow Serving takes the pixels as arrays ({size}×{size}×3, values 0-255); request.json in "
                   "the zip is one, and its README shows how to make more. Image files as b64 work only with "
                   "TransferLab's own server above.")
