"""Model servers started from the app (issue 28, item 7): start, live status, a request that works, stop."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from core.errors import ServingError
from core.service import servers
from tests.conftest import trained_small_cnn


def _until(condition, seconds: float = 120.0):
    """Poll a condition (the server starts TensorFlow: tens of seconds on a busy machine); its last value."""
    deadline = time.monotonic() + seconds
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(0.5)
        value = condition()
    return value


def test_a_server_started_from_the_app_answers_and_stops(tmp_path, tiny_source):
    ws = tmp_path / "ws"
    run_dir = trained_small_cnn(ws, tiny_source)
    first = servers.start(run_dir.name, ws)
    assert first["state"] in ("starting", "serving") and first["name"] == "tiny"
    try:
        served = _until(lambda: (s := servers.status(run_dir.name, ws))["state"] == "serving" and s)
        assert served, servers.status(run_dir.name, ws)
        assert served["url"].startswith("http://127.0.0.1:")  # this computer only, on a free port
        assert servers.start(run_dir.name, ws)["pid"] == served["pid"]  # one server per run
        with urllib.request.urlopen(f"{served['url']}/v1/models/tiny/metadata", timeout=10) as response:
            assert json.load(response)["model_spec"]["name"] == "tiny"
    finally:
        servers.stop(run_dir.name, ws)
    assert servers.status(run_dir.name, ws)["state"] == "none"
    assert not servers.runs.alive(first["pid"], first["pid_started"])


def test_the_command_carries_the_workspace(tmp_path):
    ws = tmp_path / "ws"
    (ws / "runs" / "20260101-120000-aaaaaaaaaaaa").mkdir(parents=True)
    (ws / "runs" / "20260101-120000-aaaaaaaaaaaa" / "config.json").write_text(
        '{"dataset_id": "tiny-0123abcd"}')
    cmd = servers.command("20260101-120000-aaaaaaaaaaaa", ws)
    assert cmd[cmd.index("--workspace") + 1] == str(ws)


def test_a_shared_server_refuses_unless_its_owner_allows(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_HOSTED", "1")
    with pytest.raises(ServingError, match="switched off on this shared server"):
        servers.start("20260101-120000-aaaaaaaaaaaa", tmp_path)
    monkeypatch.setenv("TL_SERVE_FROM_APP", "1")
    assert servers.allowed()
