"""reconcile: a run whose process is gone becomes interrupted; a live one, or one still starting, is left alone."""

import os
import time

import pytest

from core.errors import RunStateError
from core.store import runs
from tests.core.store.helpers import config, gone_process, hold_lock


def _running(ws, pid, started):
    run_dir = runs.create_run(config(), ws)
    runs.update_status(run_dir, "running", pid=pid, pid_started=started, started=time.time())
    return run_dir


def test_a_run_whose_process_is_gone_becomes_interrupted_and_resumable(tmp_path):
    dead = _running(tmp_path, *gone_process())
    live = _running(tmp_path, os.getpid(), runs.start_time(os.getpid()))
    done = runs.create_run(config(), tmp_path)
    runs.update_status(done, "done")
    assert runs.reconcile(tmp_path) == [dead.name]
    status = runs.load_status(dead)
    assert status.state == "interrupted" and status.message == runs.INTERRUPTED_MESSAGE and status.timings.finished
    assert runs.load_status(live).state == "running" and runs.load_status(done).state == "done"
    assert runs.reconcile(tmp_path) == []  # nothing left to mark
    runs.check_resumable(dead)
    with pytest.raises(RunStateError, match="being trained right now"):
        runs.check_resumable(live)
    with pytest.raises(RunStateError, match="only interrupted or cancelled runs"):
        runs.check_resumable(done)


def test_a_recycled_pid_does_not_keep_a_run_alive(tmp_path):
    run_dir = _running(tmp_path, os.getpid(), 1)  # our pid, but recorded with another start time
    if runs.start_time(os.getpid()) is None:
        pytest.skip("no /proc here: a recycled pid cannot be told apart")
    assert runs.reconcile_run(run_dir) is True


def test_a_run_still_starting_or_holding_its_lock_is_left_alone(tmp_path):
    queued = runs.create_run(config(), tmp_path)  # no process recorded yet, submitted just now
    assert runs.reconcile_run(queued) is False and runs.load_status(queued).state == "queued"
    runs.update_status(queued, created=time.time() - 60)
    held = _running(tmp_path, *gone_process())  # its recorded pid is gone, but a process holds the lock
    holder = hold_lock(held)
    try:
        assert runs.reconcile(tmp_path) == [queued.name]
        assert runs.load_status(held).state == "running"
    finally:
        holder.stdin.close()
        holder.wait()
    assert runs.reconcile(tmp_path) == [held.name]
