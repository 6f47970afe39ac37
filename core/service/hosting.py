"""Hosted mode: a private workspace per browser session (or per logged-in user) on a shared server.

With TL_HOSTED=1 the app keeps every visitor's data apart:

- an anonymous browser session works in `<root>/sessions/<random id>/`, removed by `sweep()` once it
  has not been used for the time to live (TL_SESSION_TTL_HOURS, default 12) and trains nothing;
- a logged-in user (st.login, OIDC) works in `<root>/users/<hash of the identity>/`, which persists;
- training goes through one queue for the whole server (`<root>/queue`), so TL_MAX_JOBS caps the
  server, not each visitor; a visitor may have TL_MAX_ACTIVE_RUNS runs waiting or training (default 2);
- each workspace holds at most TL_WORKSPACE_QUOTA_MB of datasets, runs and caches (default 1000).

Everything is read from the environment, so the app, the job processes and the command line agree.
Nothing here knows about Streamlit: pages decide who the visitor is and call these functions.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from core import runs
from core.errors import QuotaExceeded, TransferLabError

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


def enabled() -> bool:
    """True on a shared server (TL_HOSTED=1)."""
    return os.environ.get("TL_HOSTED", "").strip().lower() in ("1", "true", "yes")


def env_number(name: str, default: float | None, error: type[TransferLabError] = TransferLabError) -> float | None:
    """A positive number from the environment variable `name` (default when unset); `error` names a bad one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise error(f"The setting {name}={raw!r} must be a positive number.")
    return value


def ttl_seconds() -> float:
    """How long an unused anonymous workspace is kept (TL_SESSION_TTL_HOURS, default 12 hours)."""
    return float(env_number("TL_SESSION_TTL_HOURS", 12.0)) * 3600


def quota_bytes() -> int | None:
    """The most a workspace may hold (TL_WORKSPACE_QUOTA_MB; default 1000 MB when hosted, else no limit)."""
    mb = env_number("TL_WORKSPACE_QUOTA_MB", 1000.0 if enabled() else None)
    return None if mb is None else int(mb * 2**20)


def max_active_runs() -> int | None:
    """How many runs one workspace may have waiting or training (TL_MAX_ACTIVE_RUNS; default 2 when hosted)."""
    n = env_number("TL_MAX_ACTIVE_RUNS", 2 if enabled() else None)
    return None if n is None else int(n)


def queue_dir(ws: Path) -> Path:
    """Where the training queue of this workspace lives: TL_QUEUE_DIR (one queue for a whole server), else the workspace."""
    shared = os.environ.get("TL_QUEUE_DIR")
    return Path(shared).resolve() if shared else runs.runs_root(ws)


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


def active_runs(ws: Path) -> list[runs.RunInfo]:
    """The workspace's runs waiting or training in a live process."""
    from core import jobs  # jobs imports this module

    return [r for r in runs.list_runs(ws) if r.state in ("queued", "running") and jobs.process_alive(r.status)]


def sweep(root: Path, ttl: float | None = None, now: float | None = None) -> list[str]:
    """Remove the anonymous workspaces unused for longer than the time to live; returns their ids.

    A workspace that is still training is kept until its run ends; user workspaces are never swept.
    """
    ttl = ttl_seconds() if ttl is None else ttl
    now = time.time() if now is None else now
    removed = []
    for ws in sorted((root / SESSIONS).glob("*")):
        if not ws.is_dir() or not _SESSION_ID.match(ws.name):
            continue
        if now - last_seen(ws) <= ttl or active_runs(ws):
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


# ---------------------------------------------------------------- caps


def workspace_bytes(ws: Path) -> int:
    """Bytes of every file in the workspace."""
    total = 0
    for folder, _, files in os.walk(ws):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def room_bytes(ws: Path) -> int | None:
    """How many more bytes the workspace may hold (negative when over; None: no quota)."""
    quota = quota_bytes()
    return None if quota is None else quota - workspace_bytes(ws)


def check_room(ws: Path, adding: int = 0) -> int | None:
    """The workspace's room in bytes (None: no quota); QuotaExceeded when `adding` bytes would not fit."""
    room = room_bytes(ws)
    if room is not None and adding > room:
        quota = quota_bytes()
        raise QuotaExceeded(
            f"Your workspace would hold {(quota - room + adding) / 2**20:,.0f} MB, more than the {quota / 2**20:,.0f} MB "
            "this server allows; delete a dataset on the Data page or runs on the Compare page, then try again."
        )
    return room


def check_active_runs(ws: Path) -> None:
    """QuotaExceeded when the workspace already has as many waiting or training runs as allowed."""
    cap = max_active_runs()
    if cap is None:
        return
    active = active_runs(ws)
    if len(active) >= cap:
        raise QuotaExceeded(
            f"You already have {len(active)} run(s) waiting or training, the most this shared server allows at once; "
            "wait for one to finish or cancel it on the Train page."
        )
