"""A job's process: `python -m core.service.worker RUN_DIR [--resume | --prune | --lr-find]`, started by core.service.jobs.

It waits for its turn in the queue, then trains (and compares with a baseline if asked), or prunes a
finished run into this new one and measures it (--prune); a watchdog thread stops it hard when a cancel request is not honoured within the grace period. Everything it
prints, TensorFlow's C++ logs included, goes to the run's job.log.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from core import settings
from core.engine import lrfind, training
from core.errors import TransferLabError
from core.service import jobs
from core.ship import pruning
from core.spec.config import RunConfig
from core.store import runs
from core.store.files import write_json


def _watchdog(run_dir: Path, grace: float) -> None:
    """After a cancel request, give the job `grace` seconds to stop at a batch; then stop it hard."""
    while not runs.cancel_requested(run_dir):
        time.sleep(0.5)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if runs.read_status(run_dir).get("state") in runs.FINISHED:
            return
    runs.mark_ended(run_dir, "cancelled",
                    f"Training did not stop within {grace:.0f} s of the cancel request, so it was stopped "
                               "hard; the best checkpoint so far was kept.")
    os._exit(3)


def main(run_dir: Path, resume: bool, prune: bool = False, lr_find: bool = False) -> None:
    """Job process entry: wait for a slot, then train (and compare with a baseline if asked)."""
    log = open(run_dir / "job.log", "ab", buffering=0)
    os.dup2(log.fileno(), 1)  # TensorFlow's C++ logs too
    os.dup2(log.fileno(), 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        runs.claim(run_dir)  # held while this process lives: no second process trains the run meanwhile
    except TransferLabError as exc:
        print(exc)  # another process trains this run; its status is that process's to write
        return
    if not jobs.wait_turn(run_dir):
        return
    threading.Thread(target=_watchdog, args=(run_dir, settings.cancel_grace_seconds()), daemon=True).start()
    if prune:
        _prune(run_dir)
        return
    if lr_find:
        _lr_find(run_dir)
        return
    try:
        training.train_and_compare(runs.load_config(run_dir), run_dir, resume=resume)
    except TransferLabError:
        pass  # status.json already holds the sentence


def _prune(run_dir: Path) -> None:
    """A pruning job: prune into this (child) run, then convert and measure it (prune.json)."""
    try:
        if pruning.prune(run_dir)["state"] == "done":
            pruning.measure(run_dir)
    except TransferLabError as exc:
        if runs.read_status(run_dir).get("state") == "done":  # pruned, but the measurement failed: say why
            with runs.edit_status(run_dir) as status:
                status.verdicts.prune_report_error = str(exc)


def _lr_find(job_dir: Path) -> None:
    """A learning-rate finder job (core.service.jobs.submit_lr_find): its curve in result.json, or its sentence."""
    try:
        config = RunConfig.from_json((job_dir / "config.json").read_text(encoding="utf-8"))
        write_json(job_dir / "result.json", lrfind.find(config, job_dir.parent.parent))
        runs.mark_ended(job_dir, "done", None)
    except TransferLabError as exc:
        runs.mark_ended(job_dir, "failed", str(exc))


if __name__ == "__main__":
    main(Path(sys.argv[1]), resume="--resume" in sys.argv[2:], prune="--prune" in sys.argv[2:],
         lr_find="--lr-find" in sys.argv[2:])
