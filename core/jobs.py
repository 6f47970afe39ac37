"""Background training jobs: each run trains in a fresh child process that writes its run folder.

The app never trains on its script thread (a rerun would kill the fit). The page submits a job,
then only reads the run folder, so it can leave, reload and reattach by run id.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core import datasets, runs, strategies
from core.config import RunConfig
from core.errors import TransferLabError

PROJECT = Path(__file__).resolve().parent.parent


def submit(config: RunConfig, ws: Path) -> str:
    """Validate, create the run folder and start training in a child process; returns the run id."""
    config.validate()
    datasets.check_trainable(datasets.load_dataset(config.dataset_id, ws))
    run_dir = runs.create_run(config, ws)
    log = open(run_dir / "job.log", "wb")
    # A fresh interpreter (not fork): TensorFlow is not fork-safe, and the child's memory is
    # returned to the system when it ends.
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.jobs", str(run_dir)],
        cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "TL_WORKSPACE": str(ws)}, start_new_session=True,
    )
    log.close()
    runs.update_status(run_dir, pid=proc.pid)
    return run_dir.name


def cancel(run_id: str, ws: Path) -> None:
    """Ask the job to stop at its next batch; it keeps its best checkpoint."""
    runs.request_cancel(runs.run_path(run_id, ws))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child of this process stays a zombie until reaped; reap it here.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def reconcile(ws: Path) -> list[str]:
    """Mark queued/running runs whose process is gone as interrupted; returns their ids."""
    found = []
    for info in runs.list_runs(ws):
        if info.state in ("queued", "running") and not _alive(info.status.get("pid")):
            # Give a just-submitted job a moment to record its pid.
            if time.time() - info.status.get("created", 0) < 5:
                continue
            runs.update_status(info.path, "interrupted", finished=time.time(),
                               message="The training process ended unexpectedly (the server may have restarted).")
            found.append(info.id)
    return found


def progress(run_id: str, ws: Path) -> dict[str, Any]:
    """Everything a progress view needs, read from the run folder."""
    run_dir = runs.run_path(run_id, ws)
    status = runs.read_status(run_dir)
    if status.get("state") in ("queued", "running") and not _alive(status.get("pid")):
        reconcile(ws)
        status = runs.read_status(run_dir)
    history: list[dict[str, Any]] = []
    notices: list[str] = []
    last_batch: dict[str, Any] | None = None
    phase: dict[str, Any] | None = None
    try:
        config = runs.load_config(run_dir)
        total_epochs = sum(p.epochs for p in strategies.get(config.strategy).phases(config))
    except TransferLabError:
        total_epochs = 0
    for event in runs.read_events(run_dir):
        kind = event.get("type")
        if kind == "epoch_end":
            history.append({"phase": event["phase"], "epoch": event["epoch"], "seconds": event["seconds"], **event["metrics"]})
        elif kind == "batch_end":
            last_batch = event
        elif kind == "phase_start":
            phase = event
        elif kind == "notice":
            notices.append(event["message"])
    done_epochs = len(history)
    fraction = 1.0 if status.get("state") == "done" else (done_epochs / total_epochs if total_epochs else 0.0)
    epoch_fraction = last_batch["batch"] / last_batch["steps"] if last_batch else 0.0
    return {
        "id": run_id,
        "state": status.get("state", "unknown"),
        "message": status.get("message"),
        "phase": phase,
        "history": history,
        "notices": notices,
        "last_batch": last_batch,
        "fraction": min(1.0, fraction),
        "epoch_fraction": min(1.0, epoch_fraction),
        "status": status,
    }


def _worker(run_dir: Path) -> int:
    """Child-process entry: train the run whose folder is given."""
    from core import training
    from core.errors import TransferLabError

    config = runs.load_config(run_dir)
    try:
        training.run(config, run_dir)
    except TransferLabError:
        return 2  # status.json already holds the sentence
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))
