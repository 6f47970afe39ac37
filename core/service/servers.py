"""Model servers started from the app: `python -m core serve` for one run, as a process of its own.

The Export page starts, watches and stops them here, so a teacher needs no terminal. Each server is
the very command the page shows (with the workspace, so it also works when typed), started on a free
port of this computer only (127.0.0.1); its record in `servers/<run id>.json` names the process (pid
and start time, so a recycled pid is never stopped) and the file its address is printed to. On a
shared server this is off unless its owner sets TL_SERVE_FROM_APP=1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from core import settings
from core.errors import ServingError
from core.ship import serving
from core.store import runs
from core.store.files import read_json, write_json

FOLDER = "servers"
# The project root: the server process runs `python -m core` from here, as the page's command does.
PROJECT = Path(__file__).resolve().parents[2]


def _record_path(ws: Path, run_id: str) -> Path:
    return ws / FOLDER / f"{run_id}.json"


def allowed() -> bool:
    """Whether this app may start a server: always on a private computer, on a shared one only if its owner says so."""
    return not settings.hosted() or settings.serve_from_app()


def command(run_id: str, ws: Path, port: int = serving.DEFAULT_PORT) -> list[str]:
    """The serve command for a run of this workspace, as an argument list (the page shows it joined)."""
    name = serving.default_name(runs.run_path(run_id, ws))
    return [sys.executable, "-m", "core", "serve", run_id, "--name", name, "--workspace", str(ws), "--port", str(port)]


def start(run_id: str, ws: Path) -> dict[str, Any]:
    """Start serving a finished run on a free port of this computer; returns its status (starting at first)."""
    if not allowed():
        raise ServingError("Starting a model server is switched off on this shared server; download the TensorFlow "
                           "Serving export and serve it on your own computer, or ask whoever runs this server.")
    run_dir = runs.run_path(run_id, ws)
    if not (run_dir / "model.keras").is_file():
        raise ServingError(f"Run {run_id} has no saved model to serve; choose a run that finished training.")
    current = status(run_id, ws)
    if current["state"] in ("starting", "serving"):
        return current
    folder = ws / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    out, log = folder / f"{run_id}.out", folder / f"{run_id}.log"
    args = [*command(run_id, ws, port=0), "--json"]  # port 0: any free one (Streamlit itself may hold 8501)
    with open(out, "wb") as stdout, open(log, "wb") as stderr:
        process = subprocess.Popen(args, cwd=PROJECT, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                   start_new_session=True)  # outlives a page rerun; stopped by stop()
    write_json(_record_path(ws, run_id), {
        "run": run_id, "name": serving.default_name(run_dir), "pid": process.pid,
        "pid_started": runs.start_time(process.pid), "started": time.time()})
    return status(run_id, ws)


def _address(out: Path) -> str | None:
    """The base address the server printed (its one JSON document) once its port is bound."""
    try:
        return json.loads(out.read_text(encoding="utf-8")).get("url")
    except (OSError, ValueError):
        return None


def _answers(url: str, name: str) -> bool:
    key = settings.serve_key()
    request = urllib.request.Request(f"{url}/v1/models/{name}",
                                     headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def status(run_id: str, ws: Path) -> dict[str, Any]:
    """A run's server: state 'none', 'starting', 'serving' or 'stopped' (with the reason), its address and name."""
    path = _record_path(ws, run_id)
    if not path.is_file():
        return {"state": "none", "run": run_id}
    record = read_json(path)
    url = _address(path.with_suffix(".out"))
    out = {**record, "url": url}
    if not runs.alive(record.get("pid"), record.get("pid_started")):
        return out | {"state": "stopped", "message": _last_words(path.with_suffix(".log"))}
    if url and _answers(url, record["name"]):
        return out | {"state": "serving"}
    return out | {"state": "starting"}


def _last_words(log: Path) -> str:
    """Why a server stopped by itself: the sentence it printed last, else a general one."""
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    said = next((line.removeprefix("error: ") for line in reversed(lines) if line.startswith("error: ")), None)
    return said or "The model server stopped; start it again."


def stop(run_id: str, ws: Path, wait: float = 10.0) -> None:
    """Stop a run's server (only the very process that was started) and forget it."""
    path = _record_path(ws, run_id)
    if not path.is_file():
        return
    record = read_json(path)
    pid = record.get("pid")
    if runs.alive(pid, record.get("pid_started")):
        os.kill(pid, signal.SIGTERM)  # uvicorn finishes the requests in flight, then exits
        deadline = time.monotonic() + wait
        while runs.alive(pid, record.get("pid_started")) and time.monotonic() < deadline:
            time.sleep(0.1)
    for leftover in (path, path.with_suffix(".out"), path.with_suffix(".log")):
        leftover.unlink(missing_ok=True)
