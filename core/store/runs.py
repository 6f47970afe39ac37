"""The run store: one folder per run in the workspace, written atomically, listed and loaded.

A run records the process that trains it (pid and start time), so any reader can tell a run that
is training from one whose process is gone: `reconcile` (and `reconcile_run` for one run) marks the
latter interrupted; every command and page that reads or resumes runs calls it. The process that
owns a run also holds the run folder's lock (`claim`), so two processes never train the same run;
the system releases it when the process dies, however it dies.

Checkpoints are written under a new name each time and published by an atomic pointer file, so a
process killed while writing one leaves the previous checkpoint whole.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Iterator

from core import settings
from core.errors import RunNotFound, RunStateError
from core.spec.config import RunConfig
from core.store.files import read_json, write_json
from core.store.status import COMPANIONS, FINISHED, STATES, RunStatus  # noqa: F401 - re-exported (runs.FINISHED)

_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{12}$")


def new_run_id() -> str:
    """Sortable by time, unguessable by the random tail."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(6)


# The backbone's weights after the first epoch of a run (weight_init starts from them), in checkpoints/.
EARLY_CHECKPOINT = "early_base.weights.h5"


def runs_root(ws: Path) -> Path:
    """The folder holding every run of a workspace."""
    return ws / "runs"


def create_run(config: RunConfig, ws: Path, **links: Any) -> Path:
    """Make a new run folder holding config.json and a queued status; links name its parents (Links' fields:
    study and trial for a search's trial, pruned_from for a pruned run)."""
    run_dir = runs_root(ws) / new_run_id()
    run_dir.mkdir(parents=True)
    save_config(run_dir, config)
    status = RunStatus(state="queued")
    status.timings.created = time.time()
    for key, value in links.items():
        if key not in status.links.__dataclass_fields__:
            raise TypeError(f"{key} is not a link of a run's status")
        setattr(status.links, key, value)
    write_json(run_dir / "status.json", status.to_dict())
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


def load_status(run_dir: Path) -> RunStatus:
    """The run's typed status; state 'unknown' if status.json is missing or half-written."""
    try:
        data = read_json(run_dir / "status.json")
    except (OSError, ValueError):
        return RunStatus()
    return RunStatus.from_dict(data) if isinstance(data, dict) else RunStatus()


def save_status(run_dir: Path, status: RunStatus) -> dict[str, Any]:
    """Write a typed status as status.json (stamped `updated`); only the run's own process writes it."""
    status.timings.updated = time.time()
    data = status.to_dict()
    write_json(run_dir / "status.json", data)
    return data


@contextmanager
def edit_status(run_dir: Path) -> Iterator[RunStatus]:
    """`with edit_status(run_dir) as s: s.figures.test_accuracy = ...`: read, change, write back once."""
    status = load_status(run_dir)
    yield status
    save_status(run_dir, status)


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json as a dict (load_status's typed object, flattened), {'state': 'unknown'} if unreadable."""
    return load_status(run_dir).to_dict()


def update_status(run_dir: Path, state: str | None = None, **fields: Any) -> dict[str, Any]:
    """Merge fields, named by their status.json keys, into the typed status and write it back (for tests and
    tools; the code writes through the typed transitions below, or edit_status)."""
    with edit_status(run_dir) as status:
        status.set(**({"state": state} if state is not None else {}), **fields)
    return status.to_dict()


def link_companion(run_dir: Path, role: str, companion_dir: Path) -> None:
    """Record that companion_dir was trained beside run_dir in this role (COMPANIONS), on both runs."""
    assert role in COMPANIONS, role
    with edit_status(companion_dir) as status:
        setattr(status.links, f"{role}_of", run_dir.name)
    with edit_status(run_dir) as status:
        setattr(status.links, f"{role}_run", companion_dir.name)


# ---------------------------------------------------------------- a run's life, typed: the writers of status.json


def record_process(run_dir: Path, pid: int) -> None:
    """The process that trains (or will train) the run, by pid and start time, so a recycled pid is told apart."""
    with edit_status(run_dir) as status:
        status.process.pid, status.process.pid_started = pid, start_time(pid)


def mark_queued(run_dir: Path) -> None:
    """The run waits again to be trained (a resume): created now, no process yet, no end, no message."""
    with edit_status(run_dir) as status:
        status.state, status.message = "queued", None
        status.timings.created, status.timings.finished = time.time(), None
        status.process.pid = status.process.pid_started = None


def mark_running(run_dir: Path) -> None:
    """This process starts training the run: running since now, the process recorded, the last message cleared."""
    with edit_status(run_dir) as status:
        status.state, status.message = "running", None
        status.timings.started = time.time()
        status.process.pid, status.process.pid_started = os.getpid(), start_time(os.getpid())


def mark_ended(run_dir: Path, state: str, message: str | None, detail: str | None = None,
               train_seconds: float | None = None) -> RunStatus:
    """The run ended now in `state` (one of FINISHED) with the sentence saying why; `detail` a traceback for the log,
    `train_seconds` how long it trained. Returns the status written (the caller may add its figures first)."""
    if state not in FINISHED:
        raise ValueError(f"{state} is not how a run ends; one of {', '.join(FINISHED)}")
    with edit_status(run_dir) as status:
        status.state, status.message = state, message
        status.timings.finished = time.time()
        if detail is not None:
            status.detail = detail
        if train_seconds is not None:
            status.timings.train_seconds = train_seconds
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


def busy_message(run_dir: Path, pid: int | None = None) -> str:
    """The sentence for a request that needs a run no process is training."""
    by = f" (pid {pid})" if pid else ""
    return f"Run '{run_dir.name}' is being trained right now by another process{by}; wait for it to finish, or cancel it first."


def check_resumable(run_dir: Path) -> None:
    """Raise RunStateError unless the run was interrupted or cancelled and no process is training it.

    Call reconcile_run first, so a run whose process died reads as interrupted. A run that stopped before
    its first checkpoint resumes by starting again from the beginning (training says so in a notice).
    """
    status = read_status(run_dir)
    state = status.get("state")
    holder = lock_holder(run_dir)
    if holder is not None or (state in ("queued", "running") and process_alive(status)):
        raise RunStateError(busy_message(run_dir, (holder or {}).get("pid") or status.get("pid")))
    if state not in ("interrupted", "cancelled"):
        raise RunStateError(f"Run '{run_dir.name}' is {state}; only interrupted or cancelled runs can be resumed.")
    if status.get("pruned_from"):  # resuming would train the parent's recipe, not prune it
        raise RunStateError(f"Run '{run_dir.name}' is a pruning of run {status['pruned_from']} that did not finish; "
                            f"prune run {status['pruned_from']} again instead (Export page, or 'python -m core prune').")


@dataclass(frozen=True)
class RunInfo:
    """What listings show about a run."""

    id: str
    path: Path
    state: str
    config: RunConfig | None
    status: dict[str, Any]

    @cached_property
    def typed_status(self) -> RunStatus:
        """The status as a RunStatus (the dict `status` stays for older readers)."""
        return RunStatus.from_dict(self.status)

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
    if lock_holder(path) is not None:
        raise RunStateError(busy_message(path, lock_holder(path).get("pid")))
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


# The sentence a run gets when its process is found gone (the app and the command line alike).
INTERRUPTED_MESSAGE = ("The training process ended unexpectedly (the server may have restarted); "
                       "resume it to continue from its last checkpoint.")


def reconcile_run(run_dir: Path, status: dict[str, Any] | None = None) -> bool:
    """Mark this run interrupted if it is queued or running but its process is gone; True if it did.

    Gone means: the recorded process (pid and start time) no longer runs and nobody holds the run's lock; a run
    with no process recorded yet counts as gone 5 seconds after it was submitted (its process is starting).
    """
    status = read_status(run_dir) if status is None else status
    if status.get("state") not in ("queued", "running") or process_alive(status):
        return False
    if not status.get("pid") and time.time() - status.get("created", 0) < 5:
        return False
    if lock_holder(run_dir) is not None:
        return False
    mark_ended(run_dir, "interrupted", INTERRUPTED_MESSAGE)
    return True


def reconcile(ws: Path) -> list[str]:
    """Mark queued/running runs whose process is gone as interrupted; returns their ids."""
    return [info.id for info in list_runs(ws) if reconcile_run(info.path, info.status)]


# ---------------------------------------------------------------- one process per run: the run's lock

_LOCK = ".lock"
_HELD: dict[str, IO[str]] = {}  # run folder -> the open lock file this process holds


def claim(run_dir: Path) -> bool:
    """Hold the run folder's lock until release() or the end of this process (the system drops it however the
    process ends). True if this call took it, False if this process already held it; RunStateError (a sentence)
    when another process holds it."""
    key = str(run_dir.resolve())
    if key in _HELD:
        return False
    f = open(run_dir / _LOCK, "a+", encoding="utf-8")
    for attempt in range(5):  # a reader's probe (lock_holder) holds it for an instant
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 4:
                f.close()
                raise RunStateError(busy_message(run_dir, (lock_holder(run_dir) or {}).get("pid"))) from None
            time.sleep(0.1)
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "pid_started": start_time(os.getpid()), "since": time.time()}))
    f.flush()
    _HELD[key] = f
    return True


def release(run_dir: Path) -> None:
    """Let go of a lock taken by claim() (other processes may train the run again)."""
    f = _HELD.pop(str(run_dir.resolve()), None)
    if f is not None:
        f.close()  # closing drops the flock


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds the run's lock ({"pid": ...}, this process included), or None when no process does."""
    key = str(run_dir.resolve())
    if key in _HELD:
        return {"pid": os.getpid()}
    path = run_dir / _LOCK
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    return json.loads(f.read() or "{}")
                except ValueError:
                    return {}
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- checkpoints published atomically


def checkpoint_files(prefix: Path) -> Path | None:
    """The files a checkpoint name (checkpoints/last, checkpoints/best) stands for now: the generation its
    pointer file (last.json) names, or, for a run from an older version, the name itself; None if none exists."""
    try:
        current = prefix.parent / read_json(prefix.parent / f"{prefix.name}.json")["files"]
    except (OSError, ValueError, KeyError, TypeError):
        current = prefix
    return current if Path(f"{current}.index").is_file() else None


def new_checkpoint_files(prefix: Path) -> Path:
    """A fresh name to write the next version of a checkpoint under (published by publish_checkpoint)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    return prefix.parent / f"{prefix.name}-{secrets.token_hex(4)}"


def publish_checkpoint(prefix: Path, files: Path) -> None:
    """Make `files` (written completely) the checkpoint `prefix` stands for, in one atomic rename of the pointer
    file; then remove the older versions and any half-written leftovers of a killed process."""
    write_json(prefix.parent / f"{prefix.name}.json", {"files": files.name})
    for path in prefix.parent.iterdir():
        stale = path.name.startswith((f"{prefix.name}-", f"{prefix.name}.index", f"{prefix.name}.data-"))
        if stale and not path.name.startswith(f"{files.name}."):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def disk_full(exc: BaseException) -> bool:
    """True for a write that failed because the disk (or the user's disk quota) is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


# ---------------------------------------------------------------- temporary files a killed process left


def scratch_prefix(prefix: str) -> str:
    """The start of a temporary name that records this process (pid and start time), so that sweep_scratch
    can tell the leftover of a killed process from a write still under way."""
    return f"{prefix}{os.getpid()}-{start_time(os.getpid()) or 0}-"


def sweep_scratch(folder: Path, prefix: str) -> list[Path]:
    """Remove the temporary files and folders named by scratch_prefix(prefix) whose process is gone."""
    removed = []
    for path in folder.glob(f"{prefix}*") if folder.is_dir() else ():
        found = re.match(r"(\d+)-(\d+)-", path.name[len(prefix):])
        if found is None or alive(int(found[1]), int(found[2]) or None):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed
