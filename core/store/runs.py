"""The run store: one folder per run in the workspace, written atomically, listed and loaded.

A run records the process that trains it (pid and start time), so any reader can tell a run that
is training from one whose process is gone: `reconcile` marks the latter interrupted.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from core import settings
from core.errors import RunNotFound, RunStateError
from core.spec.config import RunConfig
from core.store.files import read_json, write_json

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{12}$")


def new_run_id() -> str:
    """Sortable by time, unguessable by the random tail."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(6)


# The backbone's weights after the first epoch of a run (weight_init starts from them), in checkpoints/.
EARLY_CHECKPOINT = "early_base.weights.h5"


def runs_root(ws: Path) -> Path:
    """The folder holding every run of a workspace."""
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
        if settings.hosted():  # a shared server: no server path, no session id (the folder's name)
            raise RunNotFound(f"There is no run '{run_id}' in your workspace; the Compare page lists your runs.")
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


# ---------------------------------------------------------------- the process that trains a run


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot, from /proc); None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[19])  # field 22, counted from the state field (3)


def alive(pid: int | None, started: int | None = None) -> bool:
    """True while the process exists (a finished child of ours is reaped, not counted).

    `started`, the start time recorded with the pid, tells a recycled pid (another program now) from the job.
    """
    if not pid:
        return False
    if started is not None and start_time(pid) not in (None, started):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # a finished child is a zombie until reaped
        return done == 0
    except ChildProcessError:
        pass  # not our child: it exists, unless it is someone else's finished child not yet reaped
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust os.kill
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")  # the state field follows "(command)"


def process_alive(status: dict[str, Any]) -> bool:
    """True while the process recorded in a run's status still runs (and is that process, not a recycled pid)."""
    return alive(status.get("pid"), status.get("pid_started"))


def active_runs(ws: Path) -> list[RunInfo]:
    """The workspace's runs waiting or training in a live process."""
    return [r for r in list_runs(ws) if r.state in ("queued", "running") and process_alive(r.status)]


def reconcile(ws: Path) -> list[str]:
    """Mark queued/running runs whose process is gone as interrupted; returns their ids."""
    found = []
    for info in list_runs(ws):
        if info.state in ("queued", "running") and not process_alive(info.status):
            if time.time() - info.status.get("created", 0) < 5:
                continue  # just submitted: its process may not have recorded its pid yet
            update_status(info.path, "interrupted", finished=time.time(),
                          message="The training process ended unexpectedly (the server may have restarted); "
                                  "resume it to continue from its last checkpoint.")
            found.append(info.id)
    return found
