"""Background training jobs: each run trains in its own spawned process that writes its run folder.

The app never trains on its script thread (a rerun would kill the fit). The page submits a job,
then only reads the run folder, so it can leave, reload and reattach by run id.

Queue: submitting a run puts a ticket in the queue folder (the workspace's runs folder, or
TL_QUEUE_DIR: one queue for every workspace of a hosted server). A job's process waits, as
`queued` with its position, until fewer than TL_MAX_JOBS (default 1) ticketed runs are training;
the check-and-start step holds a file lock, so processes of several servers or command lines
share the limit. A ticket goes when its run ends or its process is gone. The learning-rate finder of the
Search page is a job too (`submit_lr_find`, a folder under the workspace's jobs/), in the same queue.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from core import settings
from core.data import health
from core.engine import transfer
from core.errors import RunNotFound, TransferLabError, WeightsUnavailable
from core.ship import pruning
from core.spec import strategies
from core.spec.config import RunConfig
from core.store import datasets, quota, runs
from core.store.files import file_lock, read_json, write_json
from core.store.runs import process_alive

WAIT_POLL_SECONDS = 1.0
PROJECT = Path(__file__).resolve().parents[2]


def queue_dir(ws: Path) -> Path:
    """Where the training queue of this workspace lives: TL_QUEUE_DIR (one queue for a whole server), else the workspace."""
    return settings.queue_dir() or runs.runs_root(ws)


def submit(config: RunConfig, ws: Path) -> str:
    """Validate, create the run folder and start its job process; returns the run id."""
    config.validate()
    refusal = transfer.offline_refusal(config)  # before a run folder exists: nothing to clean up
    if refusal:
        raise WeightsUnavailable(refusal)
    health.check_trainable(datasets.load_dataset(config.dataset_id, ws), config.backbone)
    quota.check_active_runs(ws)
    quota.check_room(ws)
    run_dir = runs.create_run(config, ws)
    _enqueue(run_dir, queue_dir(ws))
    _spawn(run_dir, resume=False)
    return run_dir.name


def resume(run_id: str, ws: Path) -> None:
    """Continue an interrupted or cancelled run from its last checkpoint, as a new job."""
    run_dir = runs.run_path(run_id, ws)
    runs.reconcile_run(run_dir)
    runs.check_resumable(run_dir)
    quota.check_active_runs(ws)
    runs.cancel_file(run_dir).unlink(missing_ok=True)
    # No process yet (the dead one's pid goes): readers give the new one 5 seconds to record itself.
    runs.mark_queued(run_dir)
    _enqueue(run_dir, queue_dir(ws))
    _spawn(run_dir, resume=True)


def submit_prune(run_id: str, sparsity: float, epochs: int, ws: Path, clusters: int = pruning.DEFAULT_CLUSTERS) -> str:
    """Prune a finished run in a background job: a new run (pruned_from names the parent); returns its id."""
    quota.check_active_runs(ws)
    quota.check_room(ws)
    child = pruning.create_child(runs.run_path(run_id, ws), sparsity, epochs, clusters)
    _enqueue(child, queue_dir(ws))
    _spawn(child, resume=False, prune=True)
    return child.name


# ---------------------------------------------------------------- the learning-rate finder as a job

LR_FIND_STOPPED = "The learning-rate finder stopped unexpectedly (the server may have restarted); try again."


def lr_find_path(job_id: str, ws: Path) -> Path:
    """The folder of a learning-rate finder job (config.json, status.json, result.json, job.log)."""
    if not re.fullmatch(r"lrfind-[0-9a-f]{12}", job_id) or not (ws / "jobs" / job_id / "config.json").is_file():
        raise RunNotFound(f"There is no learning-rate finder job '{job_id}' here; start the finder again.")
    return ws / "jobs" / job_id


def submit_lr_find(config: RunConfig, ws: Path) -> str:
    """Start the learning-rate finder as a background job: its own process, one slot of the training queue, and
    counted by a shared server's caps like a run. Returns the job id; lr_find_state() says how it stands."""
    config.validate()
    health.check_trainable(datasets.load_dataset(config.dataset_id, ws), config.backbone)
    quota.check_active_runs(ws)
    quota.check_room(ws)
    job_dir = ws / "jobs" / f"lrfind-{uuid.uuid4().hex[:12]}"
    job_dir.mkdir(parents=True)
    (job_dir / "config.json").write_text(config.to_json(), encoding="utf-8")
    write_json(job_dir / "status.json", {"state": "queued", "created": time.time()})
    _enqueue(job_dir, queue_dir(ws))
    _spawn(job_dir, resume=False, lr_find=True)
    return job_dir.name


def lr_find_state(job_id: str, ws: Path) -> dict[str, Any]:
    """How a finder job stands: state (queued, running, done, failed, interrupted), queue_position, message, and
    when done its result (core.engine.lrfind.find's curve and suggestion)."""
    job_dir = lr_find_path(job_id, ws)
    status = runs.read_status(job_dir)
    if status.get("state") in ("queued", "running") and not process_alive(status) \
            and time.time() - status.get("created", 0) > 5:
        runs.mark_ended(job_dir, "interrupted", LR_FIND_STOPPED)
        status = runs.read_status(job_dir)
    state = {k: status.get(k) for k in ("state", "message", "queue_position")}
    if state["state"] == "done":
        state["result"] = read_json(job_dir / "result.json")
    return state


def _spawn(run_dir: Path, resume: bool, prune: bool = False, lr_find: bool = False) -> None:
    # A fresh interpreter per job (spawn semantics): TensorFlow is not fork-safe, and the job's
    # memory goes back to the system when it ends. Not multiprocessing's spawn context: under
    # `streamlit run` it would re-import the app script as the child's __main__. Its own session,
    # so a server restart leaves the job training; one that dies shows as interrupted.
    cmd = [sys.executable, "-m", "core.service.worker", str(run_dir)] + (["--resume"] if resume else []) + (
        ["--prune"] if prune else []) + (["--lr-find"] if lr_find else [])
    proc = subprocess.Popen(
        cmd, cwd=PROJECT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TL_WORKSPACE": str(run_dir.parent.parent)}, start_new_session=True,
    )
    runs.record_process(run_dir, proc.pid)


def cancel(run_id: str, ws: Path) -> None:
    """Ask the job to stop at its next batch; it keeps its best checkpoint (a hard stop follows the grace period)."""
    runs.request_cancel(runs.run_path(run_id, ws))


def queue_position(run_id: str, ws: Path) -> int | None:
    """1-based place among waiting runs of its queue (oldest first), or None when the run is not waiting."""
    place = queue_place(run_id, ws)
    return place["position"] if place else None


def queue_place(run_id: str, ws: Path) -> dict[str, int] | None:
    """A waiting run's place in line and how many runs must finish before it starts (0: it starts now).

    None when the run is not waiting. A run that is first in line with a free slot is just starting,
    so nothing is ahead of it: the page then says "getting ready", not "waiting".
    """
    run_dir = runs.run_path(run_id, ws)
    qdir = _queue_of(run_dir)
    with _queue_lock(qdir):
        training, waiting = _queue_state(qdir)
    names = [d.name for d in waiting]
    if run_id not in names:
        return None
    position = names.index(run_id) + 1
    busy = max(0, len(training) - settings.max_jobs() + 1)  # running jobs that must end to free one slot
    return {"position": position, "ahead": position - 1 + busy}


def progress(run_id: str, ws: Path) -> dict[str, Any]:
    """Everything a progress view needs, read from the run folder."""
    run_dir = runs.run_path(run_id, ws)
    status = runs.read_status(run_dir)
    if runs.reconcile_run(run_dir, status):
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
    eta, eta_pending = None, 0
    if state == "running" and history and config is not None:
        eta, eta_pending = _eta(config, planned, history, phase, epoch_fraction)
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
        "eta_pending_epochs": eta_pending,
        **_place(run_id, ws, state),
        "status": status,
    }


def _place(run_id: str, ws: Path, state: str) -> dict[str, int | None]:
    place = queue_place(run_id, ws) if state == "queued" else None
    return {"queue_position": place and place["position"], "runs_ahead": place["ahead"] if place else 0}


def _eta(config: RunConfig, planned: list[strategies.Phase], history: list[dict[str, Any]],
         phase: dict[str, Any] | None, epoch_fraction: float) -> tuple[float, int]:
    """Seconds left over every phase still to come, and the epochs that cannot be timed yet.

    Each phase's epochs are timed by the latest epochs of its own kind (on cached features or full
    passes; backbone frozen or trained), so a fast head on cached features does not promise a quick
    fine-tuning; epochs of a kind not run yet are counted apart (timed once their phase starts).
    """
    def kind(p: strategies.Phase) -> tuple[bool, str]:
        return strategies.uses_feature_cache(config, p), p.base_trainable

    kinds = {p.name: kind(p) for p in planned}
    done_in: dict[str, int] = {}
    timed: dict[tuple[bool, str], list[float]] = {}
    for h in history:
        done_in[h["phase"]] = done_in.get(h["phase"], 0) + 1
        if h["phase"] in kinds:
            timed.setdefault(kinds[h["phase"]], []).append(float(h["seconds"]))
    current = phase["index"] if phase else 1  # 1-based; earlier phases are over, even if they stopped early
    seconds, pending = 0.0, 0
    for index, p in enumerate(planned, start=1):
        if index < current:
            continue
        left = max(0.0, p.epochs - done_in.get(p.name, 0) - (epoch_fraction if index == current else 0.0))
        recent = timed.get(kind(p), [])[-3:]
        if recent:
            seconds += left * sum(recent) / len(recent)
        else:
            pending += round(left + 0.4999)
    return max(0.0, seconds), pending


def _queue_of(run_dir: Path) -> Path:
    """The queue folder a run was submitted to (recorded in its status)."""
    recorded = runs.read_status(run_dir).get("queue")
    return Path(recorded) if recorded else runs.runs_root(run_dir.parent.parent)


def _ticket(run_dir: Path, qdir: Path) -> Path:
    return qdir / "tickets" / f"{run_dir.name}.json"


def _enqueue(run_dir: Path, qdir: Path) -> None:
    """Put the run in line: its status names the queue, and the queue holds a ticket naming the run."""
    with runs.edit_status(run_dir) as status:
        status.process.queue = str(qdir)
    write_json(_ticket(run_dir, qdir), {"run_dir": str(run_dir.resolve()),
                                             "created": runs.read_status(run_dir).get("created", time.time())})


def _queue_lock(qdir: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(qdir / ".queue.lock")


def _queue_state(qdir: Path) -> tuple[list[Path], list[Path]]:
    """(training, waiting oldest first) run folders of a queue; drops the tickets of ended runs. Hold the lock."""
    training, waiting = [], []
    for ticket in sorted((qdir / "tickets").glob("*.json")):
        try:
            entry = read_json(ticket)
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
            if (run_dir / "config.json").is_file():  # a run (a study's job folder gets its own sentence, studies.job_state)
                runs.reconcile_run(run_dir, status)  # waiting or training, but its process is gone: interrupted
            ticket.unlink(missing_ok=True)
    return training, [d for _, d in sorted(waiting, key=lambda w: w[0])]


def wait_turn(run_dir: Path) -> bool:
    """Block until this run may start (then mark it running); False if it was cancelled while waiting."""
    qdir = _queue_of(run_dir)
    if not _ticket(run_dir, qdir).is_file():
        _enqueue(run_dir, qdir)  # a run started without submit() (older run folders)
    while True:
        if runs.cancel_requested(run_dir):
            runs.mark_ended(run_dir, "cancelled", "Cancelled before it started.")
            return False
        with _queue_lock(qdir):
            runs.record_process(run_dir, os.getpid())
            training, waiting = _queue_state(qdir)
            names = [d.name for d in waiting]
            if len(training) < settings.max_jobs() and names and names[0] == run_dir.name:
                with runs.edit_status(run_dir) as status:
                    status.state, status.process.queue_position = "running", None
                return True
            position = names.index(run_dir.name) + 1 if run_dir.name in names else None
            with runs.edit_status(run_dir) as status:
                status.process.queue_position = position
        time.sleep(WAIT_POLL_SECONDS)
