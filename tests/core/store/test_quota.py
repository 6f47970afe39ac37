"""The caps of a shared server: disk space per workspace and active runs, shared by one visitor's tabs."""

import os

import pytest

from core.errors import QuotaExceeded
from core.store import quota, runs
from tests.core.store.helpers import config, gone_process


def test_disk_cap_refuses_what_would_not_fit(tmp_path, monkeypatch):
    monkeypatch.delenv("TL_WORKSPACE_QUOTA_MB", raising=False)
    monkeypatch.delenv("TL_HOSTED", raising=False)
    ws = tmp_path / "ws"
    (ws / "datasets").mkdir(parents=True)
    (ws / "datasets" / "blob").write_bytes(b"x" * 300_000)
    assert quota.workspace_bytes(ws) == 300_000
    assert quota.check_room(ws, 10**12) is None  # no quota on a personal machine
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "0.5")
    assert quota.check_room(ws) == 2**19 - 300_000
    quota.check_room(ws, 200_000)
    with pytest.raises(QuotaExceeded, match="more than the 0 MB this server allows; delete a dataset"):
        quota.check_room(ws, 300_000)


def test_a_visitors_tabs_share_the_disk_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "1")
    tab1, tab2 = tmp_path / "visitor-abc" / "tab1", tmp_path / "visitor-abc" / "tab2"
    for tab in (tab1, tab2):
        tab.mkdir(parents=True)
        (tab / "f").write_bytes(b"x" * 2**19)
    assert quota.sharing(tab1) == [tab1, tab2] and quota.room_bytes(tab1) == 0
    with pytest.raises(QuotaExceeded, match="Your browser tabs together would hold"):
        quota.check_room(tab1, 1)
    alone = tmp_path / "other" / "ws"
    alone.mkdir(parents=True)
    assert quota.sharing(alone) == [alone] and quota.room_bytes(alone) == 2**20


def test_active_run_cap_counts_live_runs_of_every_tab(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_MAX_ACTIVE_RUNS", "2")
    tab1, tab2 = tmp_path / "visitor-abc" / "tab1", tmp_path / "visitor-abc" / "tab2"
    me = os.getpid(), runs.start_time(os.getpid())
    for tab, process in ((tab1, me), (tab2, gone_process())):
        runs.update_status(runs.create_run(config(), tab), "running", pid=process[0], pid_started=process[1])
    quota.check_active_runs(tab1)  # one live run: the dead one does not count
    runs.update_status(runs.create_run(config(), tab2), "running", pid=me[0], pid_started=me[1])
    with pytest.raises(QuotaExceeded, match="You already have 2 run\\(s\\) waiting or training in your browser tabs"):
        quota.check_active_runs(tab1)
    monkeypatch.delenv("TL_MAX_ACTIVE_RUNS")
    monkeypatch.delenv("TL_HOSTED", raising=False)
    quota.check_active_runs(tab1)  # no cap on a personal machine
