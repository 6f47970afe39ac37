"""The Export page's "Use it from another program": a button that starts the model server for a run on this
computer (with its address, a live status and Stop), the same command for a terminal (carrying the workspace),
curl lines, a ten-line Python client and the TensorFlow Serving lines, each filled in with the run's name and labels."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import streamlit as st

from core import settings
from core.errors import TransferLabError
from core.service import servers
from core.ship import runfiles, serving
from core.store import runs
from pages import _common

K = "serve."


def terminal_port() -> int:
    """TensorFlow Serving's port, unless this app itself listens there (Streamlit's default is the same 8501)."""
    return serving.DEFAULT_PORT + 10 if st.get_option("server.port") == serving.DEFAULT_PORT else serving.DEFAULT_PORT


def serve_ui(run: runs.RunInfo, ws: Path) -> None:
    """How another program asks this run's model, over TensorFlow Serving's REST API."""
    st.subheader("Use it from another program")
    st.caption("TransferLab can answer other programs over the network: a script, a website's back end or a form "
               "sends an image and gets the labels with their probabilities back, in the format TensorFlow Serving "
               "uses. Use it when another program should classify images without running TensorFlow itself.")
    name = serving.default_name(run.path)
    labels = runfiles.classes(run.path)
    size = run.config.image_size if run.config else 224
    key = st.toggle("Require a key", value=settings.serve_key() is not None, key=K + "key",
                    help="With TL_SERVE_KEY set, the server answers only requests that carry the key "
                         "(header 'Authorization: Bearer KEY'). Set one whenever other computers can reach it.")
    url = f"http://{serving.DEFAULT_HOST}:{terminal_port()}"
    if not servers.allowed():
        st.info("On this shared server you cannot start programs. Download the TensorFlow Serving export (choose it "
                "under Format above) and serve it on your own computer with the lines under 'TensorFlow Serving'.")
    else:
        url = app_server_ui(run, ws, name) or url
        terminal_ui(run, ws, name, key)
        st.markdown(f"**Ask it**, from a terminal or a program. Images of any size are resized to {size}×{size}; "
                    f"the answer holds one probability per label: {', '.join(labels)}.")
    examples_ui(serving.client_examples(name, labels, size, url=url, key=key), name, size)


def app_server_ui(run: runs.RunInfo, ws: Path, name: str) -> str | None:
    """Start / status / Stop of this run's server on this computer; its address while it serves."""
    state = servers.status(run.id, ws)
    if state["state"] in ("none", "stopped"):
        if state["state"] == "stopped":
            st.warning(state["message"])
        if st.button("Start the server on this computer", key=K + "start", icon=":material/play_circle:",
                     help=f"Serves this run as '{name}' on a free port; only programs on this computer can reach "
                          "it. It keeps running when you leave this page, until you press Stop."):
            try:
                servers.start(run.id, ws)
            except TransferLabError as exc:
                st.error(str(exc))
                return None
            st.rerun()
        return None
    starting = state["state"] == "starting"
    st.session_state[K + "poll"] = _common.POLL_EVERY if starting else None
    st.fragment(_server_status, run_every=st.session_state[K + "poll"])(run.id, ws, state["state"])
    return state["url"] if state["state"] == "serving" else None


def _server_status(run_id: str, ws: Path, drawn: str) -> None:
    """The live status, polled while the server starts; a full rerun once it serves (the examples use its address)."""
    state = servers.status(run_id, ws)
    if state["state"] != drawn:
        st.rerun(scope="app")
    if state["state"] == "starting":
        st.info("The server is starting: it loads TensorFlow and the model, which takes a few seconds.",
                icon=":material/hourglass_top:")
    else:
        st.success(f"Serving **{state['name']}** at {state['url']}. Only programs on this computer can reach it; "
                   "the examples below use this address.", icon=":material/dns:")
    if st.button("Stop the server", key=K + "stop", icon=":material/stop_circle:"):
        servers.stop(run_id, ws)
        st.rerun(scope="app")


def terminal_ui(run: runs.RunInfo, ws: Path, name: str, key: bool) -> None:
    """The same server from a terminal: the command carries this app's workspace and the project folder."""
    port = terminal_port()
    command = f"cd {shlex.quote(str(servers.PROJECT))} && {shlex.join(servers.command(run.id, ws, port=port))}"
    if key:
        command = "export TL_SERVE_KEY=choose-a-long-secret\n" + command
    with st.expander("Or start it from a terminal"):
        st.markdown(f"It serves this run as **{name}** on port {port} and answers only programs on this computer "
                    "(add `--host 0.0.0.0` to let other computers in, and read the README's 'Serving' section "
                    "first). Stop it with Ctrl-C.")
        st.code(command, language="bash")


def examples_ui(examples: dict[str, Any], name: str, size: int) -> None:
    """curl, a Python client and TensorFlow Serving's own server, as tabs."""
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
