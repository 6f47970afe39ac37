"""Background training jobs: each run trains in its own spawned process that writes its run folder.

The app never trains on its script thread (a rerun would kill the fit). The page submits a job,
then only reads the run folder, so it can leave, reload and reattach by run id.

Queue: submitting a run puts a ticket in the queue folder (the workspace's runs folder, or
TL_QUEUE_DIR: one queue for every workspace of a hosted server). A job's process waits, as
`queued` with its position, until fewer than TL_MAX_JOBS (default 1) ticketed runs are training;
the check-and-start step holds a file lock, so processes of several servers or command lines
share the limit. A ticket goes when its run ends or its process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from core import datasets, hosting, runs, strategies
from core.config import RunConfig
from core.errors import TransferLabError

WAIT_POLL_SECONDS = 1.0
PROJECT = Path(__file__).resolve().parent.parent


def max_jobs() -> int:
    """How many runs of a queue may train at once (TL_MAX_JOBS, default 1)."""
    return max(1, int(hosting.env_number("TL_MAX_JOBS", 1)))


def cancel_grace_seconds() -> float:
    """How long a cancelled job may take to stop on its own before it is stopped hard (TL_CANCEL_GRACE)."""
    return float(hosting.env_number("TL_CANCEL_GRACE", 30.0))


def submit(config: RunConfig, ws: Path) -> str:
    """Validate, create the run folder and start its job process; returns the run id."""
    config.validate()
    datasets.check_trainable(datasets.load_dataset(config.dataset_id, ws))
    hosting.check_active_runs(ws)
    hosting.check_room(ws)
    run_dir = runs.create_run(config, ws)
    _enqueue(run_dir, hosting.queue_dir(ws))
    _spawn(run_dir, resume=False)
    return run_dir.name


def resume(run_id: str, ws: Path) -> None:
    """Continue an interrupted or cancelled run from its last checkpoint, as a new job."""
    run_dir = runs.run_path(run_id, ws)
    runs.check_resumable(run_dir)
    hosting.check_active_runs(ws)
    runs.cancel_file(run_dir).unlink(missing_ok=True)
    runs.update_status(run_dir, "queued", created=time.time(), message=None, finished=None)
    _enqueue(run_dir, hosting.queue_dir(ws))
    _spawn(run_dir, resume=True)


def _spawn(run_dir: Path, resume: bool) -> None:
    # A fresh interpreter per job (spawn semantics): TensorFlow is not fork-safe, and the job's
    # memory goes back to the system when it ends. Not multiprocessing's spawn context: under
    # `streamlit run` it would re-import the app script as the child's __main__. Its own session,
    # so a server restart leaves the job training; one that dies shows as interrupted.
    cmd = [sys.executable, "-m", "core.jobs", str(run_dir)] + (["--resume"] if resume else [])
    proc = subprocess.Popen(
        cmd, cwd=PROJECT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TL_WORKSPACE": str(run_dir.parent.parent)}, start_new_session=True,
    )
    runs.update_status(run_dir, pid=proc.pid, pid_started=start_time(proc.pid))


def cancel(run_id: str, ws: Path) -> None:
    """Ask the job to stop at its next batch; it keeps its best checkpoint (a hard stop follows the grace period)."""
    runs.request_cancel(runs.run_path(run_id, ws))


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot, from /proc); None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[19])  # field 22, counted from the state field (3)


def process_alive(status: dict[str, Any]) -> bool:
    """True while the process recorded in a run's status still runs (and is that process, not a recycled pid)."""
    return alive(status.get("pid"), status.get("pid_started"))


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


def reconcile(ws: Path) -> list[str]:
    """Mark queued/running runs whose process is gone as interrupted; returns their ids."""
    found = []
    for info in runs.list_runs(ws):
        if info.state in ("queued", "running") and not process_alive(info.status):
            if time.time() - info.status.get("created", 0) < 5:
                continue  # just submitted: its process may not have recorded its pid yet
            runs.update_status(info.path, "interrupted", finished=time.time(),
                               message="The training process ended unexpectedly (the server may have restarted); "
                                       "resume it to continue from its last checkpoint.")
            found.append(info.id)
    return found


def queue_position(run_id: str, ws: Path) -> int | None:
    """1-based place among waiting runs of its queue (oldest first), or None when the run is not waiting."""
    run_dir = runs.run_path(run_id, ws)
    qdir = _queue_of(run_dir)
    with _queue_lock(qdir):
        _, waiting = _queue_state(qdir)
    names = [d.name for d in waiting]
    return names.index(run_id) + 1 if run_id in names else None


def progress(run_id: str, ws: Path) -> dict[str, Any]:
    """Everything a progress view needs, read from the run folder."""
    run_dir = runs.run_path(run_id, ws)
    status = runs.read_status(run_dir)
    if status.get("state") in ("queued", "running") and not process_alive(status):
        reconcile(ws)
        status = runs.read_status(run_dir)
    history: list[dict[str, Any]] = []
    notices: list[str] = []
    last_batch: dict[str, Any] | None = None
    phase: dict[str, Any] | None = None
    feature_pass: dict[str, Any] | None = None
    try:
        config = runs.load_config(run_dir)
        planned = [p for p in strategies.get(config.strategy).phases(config) if p.epochs > 0]
    except TransferLabError:
        config, planned = None, []
    total_epochs = sum(p.epochs for p in planned)
    for event in runs.read_events(run_dir):
        kind = event.get("type")
        if kind == "epoch_end":
            history.append({"phase": event["phase"], "epoch": event["epoch"], "seconds": event["seconds"], **event["metrics"]})
        elif kind == "batch_end":
            last_batch = event
        elif kind == "phase_start":
            phase = event
        elif kind == "features":
            feature_pass = event
        elif kind == "notice":
            notices.append(event["message"])
    done_epochs = len(history)
    state = status.get("state", "unknown")
    fraction = 1.0 if state == "done" else (done_epochs / total_epochs if total_epochs else 0.0)
    epoch_fraction = last_batch["batch"] / last_batch["steps"] if last_batch else 0.0
    eta = None
    if state == "running" and history:
        per_epoch = sum(h["seconds"] for h in history[-3:]) / len(history[-3:])
        eta = max(0.0, per_epoch * (max(0, total_epochs - done_epochs) - epoch_fraction))
    return {
        "id": run_id,
        "state": state,
        "message": status.get("message"),
        "phase": phase,
        "planned_phases": [p.name for p in planned],
        "history": history,
        "notices": notices,
        "feature_pass": feature_pass,
        "last_batch": last_batch,
        "fraction": min(1.0, fraction),
        "epoch_fraction": min(1.0, epoch_fraction),
        "eta_seconds": eta,
        "queue_position": queue_position(run_id, ws) if state == "queued" else None,
        "status": status,
    }


def _queue_of(run_dir: Path) -> Path:
    """The queue folder a run was submitted to (recorded in its status)."""
    recorded = runs.read_status(run_dir).get("queue")
    return Path(recorded) if recorded else runs.runs_root(run_dir.parent.parent)


def _ticket(run_dir: Path, qdir: Path) -> Path:
    return qdir / "tickets" / f"{run_dir.name}.json"


def _enqueue(run_dir: Path, qdir: Path) -> None:
    """Put the run in line: its status names the queue, and the queue holds a ticket naming the run."""
    runs.update_status(run_dir, queue=str(qdir))
    runs.write_json(_ticket(run_dir, qdir), {"run_dir": str(run_dir.resolve()),
                                             "created": runs.read_status(run_dir).get("created", time.time())})


@contextlib.contextmanager
def _queue_lock(qdir: Path) -> Iterator[None]:
    path = qdir / ".queue.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _queue_state(qdir: Path) -> tuple[list[Path], list[Path]]:
    """(training, waiting oldest first) run folders of a queue; drops the tickets of ended runs. Hold the lock."""
    training, waiting = [], []
    for ticket in sorted((qdir / "tickets").glob("*.json")):
        try:
            entry = runs.read_json(ticket)
            run_dir = Path(entry["run_dir"])
            status = runs.read_status(run_dir)
        except (OSError, ValueError, KeyError, TransferLabError):
            ticket.unlink(missing_ok=True)  # its run was deleted (or its workspace expired)
            continue
        state, running = status.get("state"), process_alive(status)
        fresh = time.time() - status.get("created", 0) < 5  # just submitted: its process may have no pid yet
        if state == "queued" and (running or fresh):
            waiting.append((status.get("created", 0), run_dir))
        elif state != "queued" and running:
            # Training, or done and still working: the same process then trains the from-scratch
            # baseline (compare_scratch). The slot is free only when the process has ended.
            training.append(run_dir)
        else:
            ticket.unlink(missing_ok=True)
    return training, [d for _, d in sorted(waiting, key=lambda w: w[0])]


def _wait_turn(run_dir: Path) -> bool:
    """Block until this run may start (then mark it running); False if it was cancelled while waiting."""
    qdir = _queue_of(run_dir)
    if not _ticket(run_dir, qdir).is_file():
        _enqueue(run_dir, qdir)  # a run started without submit() (older run folders)
    while True:
        if runs.cancel_requested(run_dir):
            runs.update_status(run_dir, "cancelled", finished=time.time(), message="Cancelled before it started.")
            return False
        with _queue_lock(qdir):
            runs.update_status(run_dir, pid=os.getpid(), pid_started=start_time(os.getpid()))
            training, waiting = _queue_state(qdir)
            names = [d.name for d in waiting]
            if len(training) < max_jobs() and names and names[0] == run_dir.name:
                runs.update_status(run_dir, "running", queue_position=None)
                return True
            position = names.index(run_dir.name) + 1 if run_dir.name in names else None
            runs.update_status(run_dir, queue_position=position)
        time.sleep(WAIT_POLL_SECONDS)


def _watchdog(run_dir: Path, grace: float) -> None:
    """After a cancel request, give the job `grace` seconds to stop at a batch; then stop it hard."""
    while not runs.cancel_requested(run_dir):
        time.sleep(0.5)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if runs.read_status(run_dir).get("state") in runs.FINISHED:
            return
    runs.update_status(run_dir, "cancelled", finished=time.time(),
                       message=f"Training did not stop within {grace:.0f} s of the cancel request, so it was stopped "
                               "hard; the best checkpoint so far was kept.")
    os._exit(3)


def _worker(run_dir: Path, resume: bool) -> None:
    """Job process entry: wait for a slot, then train (and compare with a baseline if asked)."""
    log = open(run_dir / "job.log", "ab", buffering=0)
    os.dup2(log.fileno(), 1)  # TensorFlow's C++ logs too
    os.dup2(log.fileno(), 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    if not _wait_turn(run_dir):
        return
    threading.Thread(target=_watchdog, args=(run_dir, cancel_grace_seconds()), daemon=True).start()
    from core import training

    try:
        training.train_and_compare(runs.load_config(run_dir), run_dir, resume=resume)
    except TransferLabError:
        pass  # status.json already holds the sentence


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), resume="--resume" in sys.argv[2:])
