"""Studies shared through a real PostgreSQL server (a throwaway cluster; skipped where PostgreSQL cannot be had):
two workers in two workspaces, an exact budget decided in the database, a worker killed mid-trial, bad storage."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.bench.tune_server import PASSWORD, PASSWORD_ROLE
from core.errors import StudyError
from core.service import studies, tuner
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


def _config(dataset_id: str) -> RunConfig:
    return RunConfig(dataset_id=dataset_id, backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=1,
                     batch_size=8, patience=0, augment=AugmentConfig(flip=False, rotate=False), val_fraction=0.2,
                     test_fraction=0.2).validate()


def _cli(ws: Path, log: Path, *args: str, fault: str = "") -> subprocess.Popen:
    # Heartbeat 2 s (grace 6 s): short for the test, long enough for a busy shared machine.
    env = {**os.environ, "TL_WORKSPACE": str(ws), "TL_STUDY_HEARTBEAT": "2", "TL_FAULT_POINT": fault}
    return subprocess.Popen([sys.executable, "-m", "core", *args, "--json", "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"))


def _wait(what: str, check, proc: subprocess.Popen | None = None, limit: float = 240):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    pytest.fail(f"{what} did not happen in time")


def test_the_ask_lock_is_held_in_the_database(pg_url, ws, tiny, tmp_path):
    study_id = studies.create(_config(tiny["id"]), ws, trials=2, search=["dropout"], storage=pg_url)
    record = studies.read_record(study_id, ws)
    # Two workers with their own connections and their own study folders (no local file in common).
    storages = [studies.open_storage(pg_url), studies.open_storage(pg_url)]
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with studies.ask_lock(record, storages[1], tmp_path / "elsewhere"):
            entered.set()
            release.wait(60)

    with studies.ask_lock(record, storages[0], studies.study_path(study_id, ws)):
        thread = threading.Thread(target=other, daemon=True)
        thread.start()
        assert not entered.wait(1.0)  # the other worker waits for the database's lock
    assert entered.wait(30)  # and gets it once the first transaction ends
    release.set()
    thread.join(30)
    assert not (tmp_path / "elsewhere").exists()


def test_showing_a_study_again_and_again_leaves_no_connection_open(pg_server, pg_url, ws, tiny):
    # A page or a worker's watcher polls `study show`; PostgreSQL allows 100 connections in all.
    study_id = studies.create(_config(tiny["id"]), ws, trials=2, search=["dropout"], storage=pg_url)
    first = studies.show(study_id, ws)["trials"]
    for _ in range(30):
        assert studies.show(study_id, ws)["trials"] == first
    database = pg_url.rsplit("/", 1)[1]
    assert pg_server.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'").strip() == "0"


def test_two_workers_in_two_workspaces_share_an_exact_budget_and_a_killed_worker_costs_nothing(
        pg_url, ws, tiny, tmp_path):
    ws_b = tmp_path / "machine-b"
    # The second machine gets the dataset as the README says: the folder datasets/<id> copied as it is.
    shutil.copytree(ws / "datasets" / tiny["id"], ws_b / "datasets" / tiny["id"])
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    study_id = studies.create(_config(tiny["id"]), ws, trials=8, search=["lr", "dropout"], storage=pg_url)
    # Both workers start together. B is SIGKILLed while its second trial saves its model: after one finished
    # trial, during the next (a head-only trial lasts a second or two, too short to catch from outside).
    worker_a = _cli(ws, log_a, "tune", "--study", study_id, "--join")
    worker_b = _cli(ws_b, log_b, "tune", "--study", study_id, "--join", "--storage", pg_url, fault="model_save:2")
    assert worker_b.wait(timeout=300) == -signal.SIGKILL, log_b.read_text()[-2000:]
    rows = studies.show(study_id, ws)["trials"]
    b = [r for r in rows if r["worker"] and r["run_id"] and (ws_b / "runs" / r["run_id"]).is_dir()]
    assert [r["state"] in ("complete", "pruned") for r in b if r["state"] != "running"] == [True]
    (killed,) = [r for r in b if r["state"] == "running"]
    out_a = json.loads(worker_a.communicate(timeout=300)[0])
    assert worker_a.returncode == 0, log_a.read_text()[-2000:]

    # A third computer reads the study from the storage alone.
    ws_c = tmp_path / "machine-c"
    ws_c.mkdir()
    proc = subprocess.run([sys.executable, "-m", "core", "study", "show", study_id, "--storage", pg_url, "--json"],
                          cwd=ROOT, env={**os.environ, "TL_WORKSPACE": str(ws_c)}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    rows = shown["trials"]
    finished = [r for r in rows if r["state"] in ("complete", "pruned")]
    assert len(finished) == 8 == out_a["counts"]["complete"] + out_a["counts"]["pruned"]  # exactly the budget
    assert rows[killed["number"]]["state"] == "failed"  # its heartbeat went silent
    retried = [r for r in finished if r["number"] > killed["number"] and r["params"] == killed["params"]]
    assert retried and retried[0]["worker"] != killed["worker"]  # its settings were tried again, by A
    workers = {r["worker"] for r in finished}
    assert len(workers) == 2 and killed["worker"] in workers and set(shown["workers"]) == workers | {killed["worker"]}
    for r in finished:  # every trial a complete run in the workspace of the worker that ran it
        home = ws_b if r["worker"] == killed["worker"] else ws
        assert runs.read_status(home / "runs" / r["run_id"])["state"] == "done"
        assert runs.load_config(home / "runs" / r["run_id"]).dataset_id == tiny["id"]
    text = subprocess.run([sys.executable, "-m", "core", "study", "show", study_id, "--storage", pg_url], cwd=ROOT,
                          env={**os.environ, "TL_WORKSPACE": str(ws_c)}, capture_output=True, text=True).stdout
    assert killed["worker"] in text and f"on {killed['worker']}" in text
    assert not (ws_c / "studies").exists()  # showing writes nothing


def test_bad_storage_is_one_sentence_and_leaves_nothing_behind(pg_server, pg_url, ws, tiny, tmp_path):
    config = _config(tiny["id"])
    wrong = pg_server.url(pg_url.rsplit("/", 1)[1], PASSWORD_ROLE, "Zq9-not-it")
    with pytest.raises(StudyError, match="password authentication failed") as refused:
        studies.create(config, ws, trials=2, storage=wrong)
    assert "Zq9-not-it" not in str(refused.value) and f"{PASSWORD_ROLE}:***@" in str(refused.value)
    with pytest.raises(StudyError, match='database "no_such_db" does not exist'):
        studies.create(config, ws, trials=2, storage=pg_server.url("no_such_db"))
    assert not (ws / "studies").exists()
    right = pg_server.url(pg_url.rsplit("/", 1)[1], PASSWORD_ROLE, PASSWORD)
    study_id = studies.create(config, ws, trials=1, search=["dropout"], storage=right)
    assert PASSWORD not in json.dumps(studies.show(study_id, ws))
    # A storage that holds another study: the sentence names what it holds; nothing is written.
    ws_b = tmp_path / "b"
    shutil.copytree(ws / "datasets" / tiny["id"], ws_b / "datasets" / tiny["id"])
    other = "s-20260101-120000-0a1b2c"
    with pytest.raises(StudyError, match=f"holds no study '{other}' \\(it holds {study_id}\\)"):
        studies.join(other, ws_b, storage=pg_url)
    with pytest.raises(StudyError, match="holds no study"):
        studies.join(study_id, ws_b, storage=pg_server.create_database("empty_one"))
    assert not (ws_b / "studies").exists()
    with pytest.raises(StudyError, match="keeps its trials in .*tl_pw:\\*\\*\\*@.*leave --storage out"):
        studies.join(study_id, ws, storage=pg_url)


def test_a_server_down_mid_study_is_a_sentence_and_the_same_command_continues(pg_server, pg_url, ws, tiny, tmp_path,
                                                                             monkeypatch):
    study_id = studies.create(_config(tiny["id"]), ws, trials=3, search=["lr", "dropout"], storage=pg_url)
    log = tmp_path / "worker.log"
    worker = _cli(ws, log, "tune", "--study", study_id, "--join")
    _wait("a trial under way", lambda: any(r["state"] == "running" and r["run_id"]
                                           for r in studies.show(study_id, ws)["trials"]), worker)
    pg_server.stop()
    try:
        worker.communicate(timeout=120)
        assert worker.returncode == 2
        errors = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
        assert errors and errors[-1].startswith(f"error: The study storage '{pg_url}' stopped answering (")
        assert "invalid data" not in errors[-1]
        assert f"continue with 'python -m core tune --study {study_id} --join'" in errors[-1]
        with pytest.raises(StudyError, match=f"storage '{pg_url}' of study {study_id} does not answer .*Connection "
                                             "refused.*try again when it is back"):
            studies.show(study_id, ws)
    finally:
        pg_server.start()
    monkeypatch.setenv("TL_STUDY_HEARTBEAT", "2")
    result = tuner.work(study_id, ws)  # the same worker again: the lost trial goes stale, and the study completes
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 3
    assert result["counts"]["failed"] == 1
