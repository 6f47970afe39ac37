"""A real browser against the real app: `streamlit run app.py` headless, driven by Playwright + Chromium.

Chromium is Debian's package (/usr/bin/chromium, installed by `make test`); no browser is downloaded.
The server gets a fresh workspace, an empty Keras cache, TL_OFFLINE=1 and TL_MAX_EPOCHS=2: the same
server settings a shared host may use, so training is short without a test-only code path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "build" / "e2e"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright client is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free port with the workspace tmp/workspace; waits for /_stcore/health.

    For a timed, real walk (not part of `make test`): TL_E2E_KERAS_CACHE=DIR seeds the server's Keras
    cache with the weight files in DIR, and TL_E2E_FULL=1 lifts the 2-epoch cap.
    """
    port = _free_port()
    env = {**os.environ, "TL_WORKSPACE": str(tmp / "workspace"), "HOME": str(tmp), "TL_OFFLINE": "1",
           "TL_MAX_EPOCHS": "2", **settings}
    if os.environ.get("TL_E2E_FULL") == "1":
        env.pop("TL_MAX_EPOCHS")
    seed = os.environ.get("TL_E2E_KERAS_CACHE")
    if seed:
        shutil.copytree(seed, tmp / ".keras" / "models", dirs_exist_ok=True)
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("the app did not answer /_stcore/health:\n" + (tmp / "server.log").read_text()[-3000:])
        time.sleep(0.3)


def _stop(proc: subprocess.Popen, ws: Path) -> None:
    """Stop the server, and any training job it left (jobs run in their own process group, past a server stop)."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    for status in ws.glob("**/runs/*/status.json"):
        info = json.loads(status.read_text())
        pid = info.get("pid")
        if info.get("state") not in ("queued", "running") or not pid:
            continue
        with contextlib.suppress(OSError):  # only a job process of this run, never a recycled pid
            if str(status.parent).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port with its own workspace; yields (url, workspace)."""
    tmp = tmp_path_factory.mktemp("e2e")
    proc, url = _start(tmp)
    yield url, tmp / "workspace"
    _stop(proc, tmp / "workspace")


@pytest.fixture(scope="module")
def hosted_server(tmp_path_factory):
    """The app as on a shared server (TL_HOSTED=1); yields (url, root of the visitors' workspaces)."""
    tmp = tmp_path_factory.mktemp("e2e-hosted")
    proc, url = _start(tmp, TL_HOSTED="1")
    yield url, tmp / "workspace"
    _stop(proc, tmp / "workspace")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Walk:
    """A page plus the user's click count and a screenshot per step."""

    def __init__(self, page, name: str) -> None:
        self.page, self.name, self.clicks, self.step = page, name, 0, 0
        SHOTS.mkdir(parents=True, exist_ok=True)

    def settle(self, timeout: float = 120_000) -> None:
        """Wait until the app is connected and its script has finished running (Streamlit's own e2e wait)."""
        self.page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout)
        self.page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)

    def click(self, locator, counts: bool = True) -> None:
        """A user's click (counted unless it is the test's own detour), then wait for the app."""
        locator.click()
        if counts:
            self.clicks += 1
        self.settle()

    def nav(self, title: str, counts: bool = True) -> None:
        """Open a page from the sidebar and wait until the browser is on it (not just idle on the old one)."""
        self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
        if counts:
            self.clicks += 1
        self.page.wait_for_url(re.compile(rf"/{title.lower()}(\?|$)"), timeout=60_000)
        self.settle()

    def choose(self, label: str, option: str, counts: bool = True) -> None:
        """Pick an option of the selectbox with this label. The list is opened again when a rerun of the app that
        was still under way closed it (a busy machine: the click landed while the script was running)."""
        box = self.page.get_by_test_id("stSelectbox").filter(has_text=label).first
        wanted = self.page.get_by_role("option", name=option, exact=True)
        for attempt in range(3):
            self.settle()
            box.click()
            try:
                wanted.wait_for(timeout=15_000)
                break
            except playwright_api.Error:
                if attempt == 2:
                    raise
        wanted.click()
        if counts:
            self.clicks += 2
        self.settle()

    def shot(self, label: str) -> Path:
        self.step += 1
        path = SHOTS / f"{self.name}-{self.step:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
