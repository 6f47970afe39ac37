"""The run lock: one process trains a run; a second is refused with a sentence; a dead holder's lock is free."""

import signal

import pytest

from core.errors import RunStateError
from core.store import runs
from tests.core.store.helpers import config, hold_lock


@pytest.fixture
def run_dir(tmp_path):
    path = runs.create_run(config(), tmp_path)
    yield path
    runs.release(path)


def test_claim_once_per_process_and_release(run_dir):
    assert runs.lock_holder(run_dir) is None
    assert runs.claim(run_dir) is True
    assert runs.claim(run_dir) is False  # this process already holds it: no second claim, no error
    assert runs.lock_holder(run_dir)["pid"] > 0
    runs.release(run_dir)
    assert runs.lock_holder(run_dir) is None


def test_second_process_is_refused_while_the_first_holds_the_lock(run_dir):
    holder = hold_lock(run_dir)
    try:
        assert runs.lock_holder(run_dir)["pid"] == holder.pid
        with pytest.raises(RunStateError, match=f"being trained right now by another process \\(pid {holder.pid}\\)"):
            runs.claim(run_dir)
        with pytest.raises(RunStateError, match="being trained"):
            runs.delete_run(run_dir.name, run_dir.parent.parent)
        assert run_dir.is_dir()
    finally:
        holder.stdin.close()
        holder.wait()


def test_lock_of_a_killed_holder_is_taken_over(run_dir):
    holder = hold_lock(run_dir)
    holder.send_signal(signal.SIGKILL)  # no clean-up runs: the system drops the lock
    holder.wait()
    assert runs.lock_holder(run_dir) is None
    assert runs.claim(run_dir) is True
    assert runs.lock_holder(run_dir)["pid"] != holder.pid
