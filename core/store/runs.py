"""The run store: one folder per run in the workspace, written atomically, listed and loaded."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import RunNotFound, RunStateError

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{12}$")


def workspace(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: the argument, else TL_WORKSPACE, else ./workspace."""
    return Path(path or os.environ.get("TL_WORKSPACE") or "workspace").resolve()


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """Read a JSON file written by write_json."""
    return json.loads(path.read_text(encoding="utf-8"))


def new_run_id() -> str:
    """Sortable by time, unguessable by the random tail."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(6)


def runs_root(ws: Path) -> Path:
    return ws / "runs"


def create_run(config: RunConfig, ws: Path) -> Path:
    """Make a new run folder holding config.json and a queued status."""
    run_dir = runs_root(ws) / new_run_id()
    run_dir.mkdir(parents=True)
    save_config(run_dir, config)
    write_json(run_dir / "status.json", {"state": "queued", "created": time.time()})
    return run_dir


def save_config(run_dir: Path, config: RunConfig) -> None:
    """Store the config exactly as trained."""
    tmp = run_dir / ".config.json.tmp"
    tmp.write_text(config.to_json(), encoding="utf-8")
    os.replace(tmp, run_dir / "config.json")


def run_path(run_id: str, ws: Path) -> Path:
    """The folder of an existing run; RunNotFound for an unknown or malformed id."""
    path = runs_root(ws) / run_id
    if not _RUN_ID.match(run_id) or not (path / "config.json").is_file():
        raise RunNotFound(f"There is no run '{run_id}' in {ws}; list runs with 'python -m core runs'.")
    return path


def load_config(run_dir: Path) -> RunConfig:
    """The RunConfig stored with a run."""
    return RunConfig.from_json((run_dir / "config.json").read_text(encoding="utf-8"))


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json, or an 'unknown' state if it is missing or half-written."""
    try:
        return read_json(run_dir / "status.json")
    except (OSError, ValueError):
        return {"state": "unknown"}


def update_status(run_dir: Path, state: str | None = None, **fields: Any) -> dict[str, Any]:
    """Merge fields into status.json (only the run's own process writes it)."""
    status = read_status(run_dir)
    if state is not None:
        assert state in STATES, state
        status["state"] = state
    status.update(fields)
    status["updated"] = time.time()
    write_json(run_dir / "status.json", status)
    return status


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """Append one event as a JSON line; a reader never sees half a line it cannot skip."""
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": round(time.time(), 3), **event}) + "\n")


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """All complete events so far (a line still being written is skipped)."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def cancel_file(run_dir: Path) -> Path:
    """The flag file whose presence asks a run's job to stop."""
    return run_dir / "cancel"


def request_cancel(run_dir: Path) -> None:
    """Ask a running job to stop at its next batch."""
    cancel_file(run_dir).touch()


def cancel_requested(run_dir: Path) -> bool:
    """True once request_cancel was called for this run."""
    return cancel_file(run_dir).exists()


def check_resumable(run_dir: Path) -> None:
    """Raise RunStateError unless the run was interrupted or cancelled after at least one epoch."""
    state = read_status(run_dir).get("state")
    if state not in ("interrupted", "cancelled"):
        raise RunStateError(f"Run '{run_dir.name}' is {state}; only interrupted or cancelled runs can be resumed.")
    if not (run_dir / "checkpoints" / "last.index").is_file():
        raise RunStateError(
            f"Run '{run_dir.name}' stopped before its first epoch ended, so there is nothing to resume; start it again."
        )


@dataclass(frozen=True)
class RunInfo:
    """What listings show about a run."""

    id: str
    path: Path
    state: str
    config: RunConfig | None
    status: dict[str, Any]

    @cached_property
    def evaluation(self) -> dict[str, Any] | None:
        """eval.json, read on first use: it holds every test prediction, so listings do not read it."""
        try:
            return read_json(self.path / "eval.json")
        except (OSError, ValueError):
            return None


def list_runs(ws: Path) -> list[RunInfo]:
    """Every run in the workspace, newest first; unreadable folders are skipped."""
    root = runs_root(ws)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.iterdir(), reverse=True):
        if not _RUN_ID.match(path.name) or not (path / "config.json").is_file():
            continue
        try:
            config = load_config(path)
        except Exception:  # noqa: BLE001 - a config from an older version still lists
            config = None
        status = read_status(path)
        out.append(RunInfo(path.name, path, status.get("state", "unknown"), config, status))
    return out


def delete_run(run_id: str, ws: Path) -> None:
    """Remove a run folder with everything in it; a queued or running run must be cancelled first."""
    path = run_path(run_id, ws)
    state = read_status(path).get("state", "unknown")
    if state in ("queued", "running"):
        raise RunStateError(f"Run '{run_id}' is still {'waiting to start' if state == 'queued' else 'training'}; "
                            "cancel it on the Train page before deleting it.")
    shutil.rmtree(path)
