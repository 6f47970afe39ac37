"""Hosted mode: private workspaces that expire, one training queue for the server, per-workspace caps."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core import settings
from core.cli import main
from core.data import importer
from core.errors import ConfigError, QuotaExceeded, TransferLabError
from core.service import hosting, jobs
from core.ship import codegen
from core.spec import backbones
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, quota, runs
from core.store.files import write_json


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv("TL_HOSTED", "1")
    for name in ("TL_QUEUE_DIR", "TL_WORKSPACE_QUOTA_MB", "TL_MAX_ACTIVE_RUNS", "TL_SESSION_TTL_HOURS"):
        monkeypatch.delenv(name, raising=False)


def _age(ws: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(ws / hosting.LAST_SEEN, (past, past))


def _fake_run(ws: Path, state: str, pid: int | None) -> Path:
    run_dir = runs.create_run(RunConfig(dataset_id="tiny-0123abcd"), ws)
    runs.update_status(run_dir, state, pid=pid)
    return run_dir


def test_session_ids_are_random_and_checked(tmp_path):
    ids = {hosting.new_session_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 32 for i in ids)
    ws = hosting.session_workspace(tmp_path, next(iter(ids)))
    assert ws.parent == tmp_path / "sessions" and (ws / hosting.LAST_SEEN).is_file()
    for bad in ("../../etc", "ABC", "", "0" * 31):
        with pytest.raises(TransferLabError):
            hosting.session_workspace(tmp_path, bad)


def test_a_user_workspace_is_named_by_a_hash_and_is_the_same_each_visit(tmp_path):
    first = hosting.user_workspace(tmp_path, "https://accounts.example|ada@example.org")
    again = hosting.user_workspace(tmp_path, "https://accounts.example|ada@example.org")
    other = hosting.user_workspace(tmp_path, "https://accounts.example|bob@example.org")
    assert first == again != other
    assert "ada" not in first.name and first.parent == tmp_path / "users"


def test_sweep_removes_only_expired_idle_session_workspaces(tmp_path, hosted, monkeypatch):
    monkeypatch.setenv("TL_SESSION_TTL_HOURS", "1")
    expired = hosting.session_workspace(tmp_path, hosting.new_session_id())
    fresh = hosting.session_workspace(tmp_path, hosting.new_session_id())
    training = hosting.session_workspace(tmp_path, hosting.new_session_id())
    died = hosting.session_workspace(tmp_path, hosting.new_session_id())
    user = hosting.user_workspace(tmp_path, "iss|someone")
    _fake_run(training, "running", os.getpid())
    _fake_run(died, "running", 2**22 + 12345)  # no such process: its run is over
    for ws in (expired, training, died, user):
        _age(ws, 2 * 3600)
    (fresh / "notes.txt").write_text("something of the visitor's")  # an empty workspace goes sooner (below)
    _age(fresh, 1800)

    removed = hosting.sweep(tmp_path)

    assert sorted(removed) == sorted([expired.name, died.name])
    assert not expired.exists() and not died.exists()
    assert fresh.is_dir() and training.is_dir() and user.is_dir()


def test_an_import_over_the_workspace_quota_is_refused_and_leaves_nothing(ws, tiny_source, hosted, monkeypatch):
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "0.05")  # the tiny dataset is larger than 50 kB
    with pytest.raises(QuotaExceeded, match="delete a dataset"):
        importer.import_path(tiny_source, ws, name="tiny")
    assert datasets.list_datasets(ws) == []
    assert not [p for p in (ws / "datasets").iterdir()]  # the temporary folder went too
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "50")
    info = importer.import_path(tiny_source, ws, name="tiny")
    assert len(info["id"].rsplit("-", 1)[1]) == 12  # 48 random bits


def test_no_quota_on_a_private_computer(ws, tiny_source, monkeypatch):
    monkeypatch.delenv("TL_HOSTED", raising=False)
    monkeypatch.delenv("TL_WORKSPACE_QUOTA_MB", raising=False)
    assert settings.workspace_quota_bytes() is None and settings.max_active_runs() is None
    quota.check_room(ws, adding=10 * 2**40)


def test_a_bad_server_setting_is_one_sentence(hosted, monkeypatch):
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "lots")
    with pytest.raises(TransferLabError, match="TL_WORKSPACE_QUOTA_MB"):
        settings.workspace_quota_bytes()
    monkeypatch.setenv("TL_MAX_JOBS", "many")
    with pytest.raises(TransferLabError, match="TL_MAX_JOBS='many' must be a positive number"):
        settings.max_jobs()


def test_a_visitor_may_not_queue_more_runs_than_allowed(tiny, ws, hosted, monkeypatch):
    monkeypatch.setenv("TL_MAX_ACTIVE_RUNS", "1")
    _fake_run(ws, "queued", os.getpid())
    config = RunConfig(dataset_id=tiny["id"], backbone="small_cnn", weights="none", strategy="from_scratch",
                       image_size=32, epochs=1).validate()
    with pytest.raises(QuotaExceeded, match="waiting or training"):
        jobs.submit(config, ws)
    assert len(runs.list_runs(ws)) == 1


def test_hub_folders_on_the_server_are_refused_when_hosted(tmp_path, hosted):
    assert backbones.hub_id("https://tfhub.dev/google/imagenet/mobilenet_v2_035_224/feature_vector/5").startswith("hub:")
    with pytest.raises(ConfigError, match="web address"):
        backbones.hub_id(str(tmp_path))


def test_one_queue_serves_every_workspace_of_the_server(tiny_source, tmp_path, monkeypatch):
    """Two visitors' workspaces, TL_MAX_JOBS=1 for the server: the second run waits for the first."""
    monkeypatch.setenv("TL_QUEUE_DIR", str(tmp_path / "queue"))
    monkeypatch.setenv("TL_MAX_JOBS", "1")
    wss = [hosting.session_workspace(tmp_path, hosting.new_session_id()) for _ in range(2)]
    run_dirs = []
    for ws, epochs in zip(wss, (4, 1)):
        info = importer.import_path(tiny_source, ws, name="tiny")
        config = RunConfig(dataset_id=info["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32,
                           epochs=epochs, batch_size=8, patience=0,
                           augment=AugmentConfig(flip=False, rotate=False)).validate()
        run_dirs.append(runs.run_path(jobs.submit(config, ws), ws))
    first, second = run_dirs
    assert runs.read_status(second)["queue"] == str(tmp_path / "queue")

    deadline = time.monotonic() + 120
    seen_waiting = False
    while runs.read_status(second).get("state") != "done":
        assert time.monotonic() < deadline, runs.read_status(second)
        if runs.read_status(first).get("state") == "running" and runs.read_status(second).get("state") == "queued":
            seen_waiting = seen_waiting or jobs.queue_position(second.name, wss[1]) == 1
        assert not (runs.read_status(first).get("state") == "running"
                    and runs.read_status(second).get("state") == "running"), "both trained at once"
        time.sleep(0.2)
    assert seen_waiting
    assert runs.read_status(first)["state"] == "done"
    assert jobs.queue_position(second.name, wss[1]) is None
    pid = runs.read_status(second)["pid"]
    while runs.alive(pid):  # "done" is written just before the process exits
        assert time.monotonic() < deadline
        time.sleep(0.1)
    jobs.queue_position(second.name, wss[1])  # any look at the queue drops the tickets of ended runs
    assert not list((tmp_path / "queue" / "tickets").glob("*.json"))


def test_the_sweep_command_for_a_cron_job(tmp_path, capsys):

    old = hosting.session_workspace(tmp_path, hosting.new_session_id())
    _age(old, 3 * 3600)
    kept = hosting.session_workspace(tmp_path, hosting.new_session_id())
    assert main(["sweep", "--workspace", str(tmp_path), "--ttl-hours", "2"]) == 0
    assert "Removed 1 expired" in capsys.readouterr().out
    assert not old.exists() and kept.is_dir()


def test_a_run_holds_its_queue_slot_until_its_process_ends(tmp_path):
    """A finished run whose process still works (training its from-scratch baseline) keeps the slot."""
    ws = hosting.session_workspace(tmp_path, hosting.new_session_id())
    qdir = tmp_path / "queue"
    working = _fake_run(ws, "done", os.getpid())  # this process is alive
    ended = _fake_run(ws, "done", 2**22 + 12345)  # no such process
    waiting = _fake_run(ws, "queued", os.getpid())
    for run_dir in (working, ended, waiting):
        jobs._enqueue(run_dir, qdir)
    with jobs._queue_lock(qdir):
        training, queued = jobs._queue_state(qdir)
    assert training == [working.resolve()] and queued == [waiting.resolve()]
    assert not jobs._ticket(ended, qdir).exists()


def test_generated_code_shows_no_server_paths_when_hosted(tmp_path, hosted):

    ws = hosting.session_workspace(tmp_path, hosting.new_session_id())
    config = RunConfig(dataset_id="tiny-0123abcdef01", backbone="mobilenet_v1_0.25", strategy="domain_weights",
                       weights="run", source_run="20260101-120000-0123456789ab")
    script = codegen.training_script(config, str(ws / "datasets" / "tiny-0123abcdef01"), classes=["a", "b"], ws=ws)
    assert str(tmp_path) not in script
    assert "DATA_DIR = 'images'" in script and "SOURCE_WEIGHTS = 'source_run/model.keras'" in script


def test_page_views_sweep_in_the_background_at_most_every_few_minutes(tmp_path, hosted, monkeypatch):
    monkeypatch.setattr(hosting, "_last_sweep", 0.0)
    old = hosting.session_workspace(tmp_path, hosting.new_session_id())
    _age(old, 13 * 3600)
    thread = hosting.sweep_now_and_then(tmp_path)
    thread.join(timeout=30)
    assert not old.exists()
    assert hosting.sweep_now_and_then(tmp_path) is None  # the next view, minutes later: nothing to do


def test_the_sweep_removes_folders_left_by_killed_imports(tmp_path, hosted):
    live = hosting.session_workspace(tmp_path, hosting.new_session_id())
    user = hosting.user_workspace(tmp_path, "iss|someone")
    stale, recent = live / "datasets" / ".import-dead", user / "datasets" / ".import-busy"
    for folder in (stale, recent):
        folder.mkdir(parents=True)
        (folder / "00000.jpg").write_bytes(b"x" * 100)
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    (user / "datasets" / ".import-old").mkdir()
    os.utime(user / "datasets" / ".import-old", (old, old))

    assert hosting.sweep(tmp_path) == []  # no workspace expired
    assert not stale.exists() and not (user / "datasets" / ".import-old").exists()
    assert recent.is_dir() and live.is_dir()


# ---------------------------------------------------------------- caps per visitor, lazy and empty workspaces


def test_tabs_from_one_address_share_the_active_run_cap_and_the_quota(tmp_path, hosted, monkeypatch):
    monkeypatch.setenv("TL_MAX_ACTIVE_RUNS", "2")
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "1")
    tab_a, tab_b = (hosting.session_workspace(tmp_path, hosting.new_session_id(), client="203.0.113.7") for _ in "ab")
    elsewhere = hosting.session_workspace(tmp_path, hosting.new_session_id(), client="198.51.100.9")
    assert tab_a.parent == tab_b.parent != elsewhere.parent
    for shown in ("203.0.113", "203-0-113", "2030113"):  # the folder name does not give the address away
        assert shown not in str(tab_a.relative_to(tmp_path))
    for _ in range(2):
        _fake_run(tab_a, "running", os.getpid())
    with pytest.raises(QuotaExceeded, match="2 run.*in your browser tabs together"):
        quota.check_active_runs(tab_b)  # a second tab does not get a second allowance
    quota.check_active_runs(elsewhere)  # another visitor is not held back

    (tab_a / "big.bin").write_bytes(b"\0" * 700_000)
    quota.check_room(tab_a, adding=200_000)
    with pytest.raises(QuotaExceeded, match="Your browser tabs together would hold"):
        quota.check_room(tab_b, adding=500_000)
    quota.check_room(elsewhere, adding=500_000)


def test_an_ipv6_visitor_counts_by_its_network_and_the_rule_can_be_switched_off(tmp_path, hosted, monkeypatch):
    one = hosting.visitor_folder(tmp_path, "2001:db8:1:2::10")
    assert one == hosting.visitor_folder(tmp_path, "2001:db8:1:2:aaaa::99") != hosting.visitor_folder(tmp_path, "2001:db8:1:3::10")
    assert hosting.visitor_folder(tmp_path, "::ffff:203.0.113.7") == hosting.visitor_folder(tmp_path, "203.0.113.7")
    assert hosting.visitor_folder(tmp_path, None) is None and hosting.visitor_folder(tmp_path, "not an address") is None
    monkeypatch.setenv("TL_CAPS_PER_ADDRESS", "0")
    sid = hosting.new_session_id()
    assert hosting.session_path(tmp_path, sid, client="203.0.113.7") == tmp_path / "sessions" / sid


def test_a_page_view_makes_no_folder_and_a_write_makes_it(tmp_path, hosted, tiny_source):
    ws = hosting.session_path(tmp_path, hosting.new_session_id(), client="203.0.113.7")
    hosting.visit(ws)
    assert not (tmp_path / "sessions").exists()
    importer.import_path(tiny_source, ws, name="tiny")
    hosting.visit(ws)
    assert (ws / hosting.LAST_SEEN).is_file() and datasets.list_datasets(ws)


def test_empty_session_workspaces_are_swept_within_minutes(tmp_path, hosted):
    empty = hosting.session_workspace(tmp_path, hosting.new_session_id(), client="203.0.113.7")
    (empty / "datasets").mkdir()  # what a failed first import leaves
    just_made = hosting.session_workspace(tmp_path, hosting.new_session_id())
    used = hosting.session_workspace(tmp_path, hosting.new_session_id())
    (used / "notes.txt").write_text("kept")
    for ws in (empty, used):
        _age(ws, hosting.EMPTY_TTL_SECONDS + 60)
    visitor = empty.parent
    past = time.time() - hosting.EMPTY_TTL_SECONDS - 60
    os.utime(visitor, (past, past))
    assert hosting.sweep(tmp_path) == [empty.name]
    assert not visitor.exists()  # its last session gone, the visitor's folder goes too
    assert just_made.is_dir() and used.is_dir()


def test_the_sweep_keeps_a_workspace_whose_study_is_between_trials(tmp_path, hosted, monkeypatch):
    monkeypatch.setenv("TL_SESSION_TTL_HOURS", "1")
    searching = hosting.session_workspace(tmp_path, hosting.new_session_id())
    ended = hosting.session_workspace(tmp_path, hosting.new_session_id())
    for ws, pid in ((searching, os.getpid()), (ended, 2**22 + 12345)):
        study = ws / "studies" / "s-20260101-120000-abcdef"
        study.mkdir(parents=True)
        write_json(study / "status.json", {"state": "running", "pid": pid,
                                            "pid_started": runs.start_time(pid), "created": time.time()})
        _age(ws, 2 * 3600)
    assert hosting.sweep(tmp_path) == [ended.name]
    assert searching.is_dir() and not ended.exists()
