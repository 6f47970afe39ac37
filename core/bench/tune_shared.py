"""`bench tune-shared`: one search shared by two workers through a real PostgreSQL server, budget 6.

A throwaway PostgreSQL cluster (core/bench/tune_server.py: Debian's PostgreSQL, initdb, a free
loopback port) holds every study, each in its own database. Two workspaces stand for two machines:
A imports the `shapes` sample (4 x 150 images), B gets the dataset by copying the folder
datasets/<id> (as the README's recipe says). Config: MobileNetV1 0.25 from scratch (no weights to
fetch), 64 px, 2 epochs, no augmentation; search lr and dropout; heartbeat 2 s (grace 6 s).
Three cases, each run as the commands a person types:

- one: `tune CONFIG --trials 6 --storage URL` alone in A (the baseline, timed end to end);
- two: the same in A, and as soon as it printed the study id, `tune --study ID --join --storage URL`
  in B; timed until both end;
- kill: the same two, B killed with SIGKILL in its second trial (after it finished one); A ends the
  study alone.

Figures: finished trials (goal: exactly 6 in every case), trials per worker, whether every finished
trial is a complete run in the workspace of the worker that ran it, the killed trial's state and
whether its settings were tried again, and seconds (two workers / one worker as a ratio; on one
computer the two workers share its cores, so the ratio says little about two machines).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.bench.tune_server import throwaway_server
from core.data import samples
from core.errors import TransferLabError
from core.service import studies
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs

PROJECT = Path(__file__).resolve().parents[2]
BUDGET = 6


def _start(ws: Path, log: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TL_WORKSPACE": str(ws), "TL_STUDY_HEARTBEAT": "2", "TL_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "core", *args, "--json", "--quiet"], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"))


def _until(check, proc: subprocess.Popen, what: str, limit: float = 900) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise TransferLabError(f"The tune-shared benchmark: {what} did not happen.")


def _study_id(log: Path, proc: subprocess.Popen) -> str:
    return _until(lambda: (re.findall(r"study (s-[\w-]+)", log.read_text()) or [None])[0], proc, "the study id")


def _trials(study_id: str, url: str, ws: Path) -> list[dict[str, Any]]:
    return studies.show(study_id, ws, storage=url)["trials"]


def _finish(proc: subprocess.Popen, log: Path) -> dict[str, Any]:
    out = proc.communicate(timeout=1800)[0]
    if proc.returncode != 0:
        raise TransferLabError(f"A tune-shared worker failed: {log.read_text().strip()[-400:]}")
    return json.loads(out)


def _case(tmp: Path, name: str, url: str, config: Path, ws_a: Path, ws_b: Path | None, kill: bool) -> dict[str, Any]:
    started = time.perf_counter()
    log_a, log_b = tmp / f"{name}-a.log", tmp / f"{name}-b.log"
    worker_a = _start(ws_a, log_a, ["tune", str(config), "--trials", str(BUDGET), "--search", "lr,dropout",
                                    "--storage", url])
    study_id = _study_id(log_a, worker_a)
    killed = None
    if ws_b is not None:
        worker_b = _start(ws_b, log_b, ["tune", "--study", study_id, "--join", "--storage", url])
        if kill:
            def b_in_second_trial():
                rows = [r for r in _trials(study_id, url, ws_a) if r["run_id"] and (ws_b / "runs" / r["run_id"]).is_dir()]
                running = [r for r in rows if r["state"] == "running"]
                return running[0] if running and any(r["state"] in ("complete", "pruned") for r in rows) else None

            killed = _until(b_in_second_trial, worker_b, "worker B in its second trial")
            os.kill(worker_b.pid, signal.SIGKILL)
            worker_b.wait()
        else:
            _finish(worker_b, log_b)
    _finish(worker_a, log_a)
    seconds = time.perf_counter() - started
    return _figures(study_id, url, ws_a, ws_b, killed, seconds)


def _figures(study_id: str, url: str, ws_a: Path, ws_b: Path | None, killed: dict[str, Any] | None,
             seconds: float) -> dict[str, Any]:
    rows = _trials(study_id, url, ws_a)
    finished = [r for r in rows if r["state"] in ("complete", "pruned")]
    homes = {ws_a: "A"} | ({ws_b: "B"} if ws_b is not None else {})

    def home(r: dict[str, Any]) -> Path | None:
        return next((ws for ws in homes if (ws / "runs" / r["run_id"]).is_dir()), None)

    complete_runs = all(home(r) is not None and runs.read_status(home(r) / "runs" / r["run_id"])["state"] == "done"
                        for r in finished)
    per_worker = {label: sum(1 for r in finished if home(r) == ws) for ws, label in homes.items()}
    out: dict[str, Any] = {
        "seconds": round(seconds, 1), "finished": len(finished), "pruned": sum(r["state"] == "pruned" for r in rows),
        "failed": sum(r["state"] == "failed" for r in rows), "per_worker": per_worker,
        "workers": sorted({r["worker"] for r in finished}), "every_trial_a_complete_run_in_its_workspace": complete_runs,
    }
    if killed is not None:
        retried = [r for r in finished if r["number"] > killed["number"] and r["params"] == killed["params"]]
        out["killed_trial"] = killed["number"]
        out["killed_trial_state"] = rows[killed["number"]]["state"]
        out["killed_settings_retried_by_A"] = bool(retried) and home(retried[0]) == ws_a
    return out


def _workspaces(tmp: Path, name: str, source: Path, two: bool) -> tuple[Path, Path | None]:
    ws_a, ws_b = tmp / name / "machine-a", tmp / name / "machine-b"
    shutil.copytree(source, ws_a / "datasets" / source.name)
    if two:
        shutil.copytree(source, ws_b / "datasets" / source.name)
    return ws_a, ws_b if two else None


def run(keras_cache: str | None = None) -> dict[str, Any]:
    """The three cases against one throwaway server; their figures."""
    del keras_cache  # the trials train from scratch: no weights needed
    out: dict[str, Any] = {"benchmark": "tune-shared", "budget": BUDGET, "cpus": os.cpu_count(),
                           "setup": "shapes sample (600 images), MobileNetV1 0.25 from scratch, 64 px, 2 epochs, "
                                    "search lr and dropout, heartbeat 2 s; a throwaway PostgreSQL server on loopback"}
    with tempfile.TemporaryDirectory(prefix="tl-bench-tune-shared-") as tmp_name, \
            throwaway_server() as server:
        tmp = Path(tmp_name)
        out["postgresql"] = server.sql("SHOW server_version").strip()
        info = samples.import_sample("shapes", tmp / "source")
        source = tmp / "source" / "datasets" / info["id"]
        config = tmp / "config.json"
        config.write_text(RunConfig(dataset_id=info["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=64,
                                    epochs=2, batch_size=32, patience=0, augment=AugmentConfig(flip=False, rotate=False),
                                    ).validate().to_json())
        for name, two, kill in (("one", False, False), ("two", True, False), ("kill", True, True)):
            ws_a, ws_b = _workspaces(tmp, name, source, two)
            out[name] = _case(tmp, name, server.create_database(f"bench_{name}"), config, ws_a, ws_b, kill)
    out["two_over_one"] = round(out["two"]["seconds"] / out["one"]["seconds"], 2)
    out["goals"] = {
        "exactly_the_budget_in_every_case": all(out[c]["finished"] == BUDGET for c in ("one", "two", "kill")),
        "both_workers_contribute": all(n > 0 for n in out["two"]["per_worker"].values())
                                   and all(n > 0 for n in out["kill"]["per_worker"].values()),
        "every_trial_a_complete_run": all(out[c]["every_trial_a_complete_run_in_its_workspace"]
                                          for c in ("one", "two", "kill")),
        "killed_trial_failed_and_retried": out["kill"]["killed_trial_state"] == "failed"
                                           and out["kill"]["killed_settings_retried_by_A"],
    }
    return out


def describe(result: dict[str, Any]) -> str:
    """The figures in a few lines."""
    lines = [f"tune-shared benchmark: budget {result['budget']}, {result['setup']} (PostgreSQL "
             f"{result['postgresql']}), {result['cpus']} CPUs"]
    for name, words in (("one", "one worker"), ("two", "two workers"), ("kill", "two workers, B killed")):
        r = result[name]
        extra = (f"; killed trial #{r['killed_trial']} {r['killed_trial_state']}, its settings retried by A: "
                 f"{r['killed_settings_retried_by_A']}") if "killed_trial" in r else ""
        lines.append(f"  {words}: {r['finished']} finished ({r['pruned']} pruned, {r['failed']} failed), per worker "
                     f"{r['per_worker']}, {r['seconds']:.0f} s; complete runs: "
                     f"{r['every_trial_a_complete_run_in_its_workspace']}{extra}")
    lines.append(f"  two workers / one worker: {result['two_over_one']:.2f}x time; goals: {result['goals']}")
    return "\n".join(lines)
