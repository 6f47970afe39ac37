"""Small helpers for the store tests: a run folder, a process that is gone, a process holding a run's lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.spec.config import RunConfig
from core.store import runs

ROOT = Path(__file__).resolve().parents[3]


def config() -> RunConfig:
    """A valid tiny config (nothing is trained)."""
    return RunConfig(dataset_id="d", backbone="small_cnn", weights="none", strategy="from_scratch").validate()


def gone_process() -> tuple[int, int | None]:
    """(pid, start time) of a process that has finished and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = runs.start_time(proc.pid)
    proc.wait()
    return proc.pid, started


# A second process that claims the run's lock, says so, and holds it until its stdin closes (or it is killed).
_HOLDER = """
import sys
from pathlib import Path
from core.store import runs
runs.claim(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Start a process holding run_dir's lock; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "held"
    return proc
