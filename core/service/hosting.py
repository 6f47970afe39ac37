"""Hosted mode: a private workspace per browser session (or per logged-in user) on a shared server.

With TL_HOSTED=1 the app keeps every visitor's data apart:

- an anonymous browser session works in `<root>/sessions/<random id>/`, removed by `sweep()` once it
  has not been used for the time to live (TL_SESSION_TTL_HOURS, default 12) and trains nothing;
- a logged-in user (st.login, OIDC) works in `<root>/users/<hash of the identity>/`, which persists;
- training goes through one queue for the whole server (`<root>/queue`), so TL_MAX_JOBS caps the
  server, not each visitor; a visitor may have TL_MAX_ACTIVE_RUNS runs waiting or training (default 2);
- each workspace holds at most TL_WORKSPACE_QUOTA_MB of datasets, runs and caches (default 1000).

The settings are read by core.settings, so the app, the job processes and the command line agree;
the caps themselves are core.store.quota's. Nothing here knows about Streamlit: pages decide who
the visitor is and call these functions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from core import settings
from core.errors import TransferLabError
from core.store import runs

SESSIONS = "sessions"
USERS = "users"
QUEUE = "queue"
LAST_SEEN = ".last_seen"
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
# An import folder untouched this long belongs to an import that was killed.
STALE_IMPORT_SECONDS = 6 * 3600.0
# How often a server process looks for expired session workspaces.
SWEEP_EVERY_SECONDS = 600.0
_last_sweep = 0.0
_sweep_lock = threading.Lock()


# ---------------------------------------------------------------- workspaces


def new_session_id() -> str:
    """128 random bits: a session workspace cannot be guessed."""
    return secrets.token_hex(16)


def session_workspace(root: Path, session_id: str) -> Path:
    """The anonymous workspace of one browser session (created, and marked as used now)."""
    if not _SESSION_ID.match(session_id):
        raise TransferLabError("That session id is not one this server makes.")
    ws = root / SESSIONS / session_id
    ws.mkdir(parents=True, exist_ok=True)
    touch(ws)
    return ws


def user_workspace(root: Path, identity: str) -> Path:
    """The lasting workspace of a logged-in user; the folder name is a hash, never the e-mail address."""
    if not identity:
        raise TransferLabError("The login did not say who you are; log out and log in again.")
    ws = root / USERS / hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    ws.mkdir(parents=True, exist_ok=True)
    touch(ws)
    return ws


def touch(ws: Path) -> None:
    """Record that the workspace is in use now (its time to live starts again)."""
    (ws / LAST_SEEN).touch()


def last_seen(ws: Path) -> float:
    """When the workspace was last used (its creation time if never marked)."""
    for path in (ws / LAST_SEEN, ws):
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            continue
    return 0.0


def sweep(root: Path, ttl: float | None = None, now: float | None = None) -> list[str]:
    """Remove the anonymous workspaces unused for longer than the time to live; returns their ids.

    A workspace that is still training is kept until its run ends; user workspaces are never swept.
    """
    ttl = settings.session_ttl_seconds() if ttl is None else ttl
    now = time.time() if now is None else now
    removed = []
    for ws in sorted((root / SESSIONS).glob("*")):
        if not ws.is_dir() or not _SESSION_ID.match(ws.name):
            continue
        if now - last_seen(ws) <= ttl or runs.active_runs(ws):
            _remove_stale_imports(ws, now)
            continue
        shutil.rmtree(ws, ignore_errors=True)
        removed.append(ws.name)
    for ws in sorted((root / USERS).glob("*")):
        _remove_stale_imports(ws, now)
    return removed


def _remove_stale_imports(ws: Path, now: float) -> None:
    """Temporary import folders an import killed mid-way left behind (they would count against the quota)."""
    for tmp in (ws / "datasets").glob(".import-*"):
        try:
            if now - tmp.stat().st_mtime > STALE_IMPORT_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
        except FileNotFoundError:
            continue  # the import finished or failed meanwhile


def sweep_now_and_then(root: Path) -> threading.Thread | None:
    """`sweep()` in a background thread, at most every SWEEP_EVERY_SECONDS per process.

    Cheap to call on every page view; the visitor whose view starts it does not wait for the deletions.
    """
    global _last_sweep
    with _sweep_lock:
        if _last_sweep and time.monotonic() - _last_sweep < SWEEP_EVERY_SECONDS:
            return None
        _last_sweep = time.monotonic()
    thread = threading.Thread(target=sweep, args=(root,), name="transferlab-sweep", daemon=True)
    thread.start()
    return thread
