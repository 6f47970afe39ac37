"""Hosted mode: a private workspace per browser session (or per logged-in user) on a shared server.

With TL_HOSTED=1 the app keeps every visitor's data apart:

- an anonymous browser session works in `<root>/sessions/<random id>/`, removed by `sweep()` once it
  has not been used for the time to live (TL_SESSION_TTL_HOURS, default 12) and trains nothing; the
  folder is made by the session's first write (an import, a run), not by a page view, and one that
  holds nothing is swept within minutes;
- when the server knows the visitor's address (st.context.ip_address, or the header a proxy sets,
  TL_CLIENT_ADDRESS_HEADER), the sessions of one address live side by side in
  `<root>/sessions/visitor-<keyed hash of the address>/<id>/` and share the caps below, so a second
  browser tab does not double them (TL_CAPS_PER_ADDRESS=0 switches this off);
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
import hmac
import ipaddress
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from core import settings
from core.errors import TransferLabError
from core.store import quota, runs

SESSIONS = "sessions"
USERS = "users"
QUEUE = "queue"
LAST_SEEN = ".last_seen"
# The server's secret for naming visitors' folders: an address cannot be read back from a folder name.
VISITOR_SALT = ".visitor-salt"
# A session workspace that holds nothing (a failed first import) is swept after this long unused.
EMPTY_TTL_SECONDS = 600.0
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


def session_path(root: Path, session_id: str, client: str | None = None) -> Path:
    """Where the anonymous workspace of one browser session lives, not created: its first write makes it.

    `client`: the visitor's address, when the server knows it; the sessions of one address share their caps.
    """
    if not _SESSION_ID.match(session_id):
        raise TransferLabError("That session id is not one this server makes.")
    visitor = visitor_folder(root, client)
    return (visitor or root / SESSIONS) / session_id


def session_workspace(root: Path, session_id: str, client: str | None = None) -> Path:
    """The anonymous workspace of one browser session, created and marked as used now (for callers about to write)."""
    ws = session_path(root, session_id, client)
    ws.mkdir(parents=True, exist_ok=True)
    touch(ws)
    return ws


def visit(ws: Path) -> None:
    """A page view: mark the workspace as used now, if a write has made it (a view alone makes nothing)."""
    if ws.is_dir():
        touch(ws)


def visitor_folder(root: Path, client: str | None) -> Path | None:
    """The folder holding the sessions of one client address (None: the address is unknown, or
    TL_CAPS_PER_ADDRESS=0). An IPv6 address counts by its /64 network, which one household usually has."""
    if not client or not settings.caps_per_address():
        return None
    try:
        ip = ipaddress.ip_address(client.strip().split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ipaddress.ip_network(f"{ip}/64", strict=False).network_address
    key = hmac.new(_salt(root), str(ip).encode(), hashlib.sha256).hexdigest()[:32]
    return root / SESSIONS / f"{quota.SHARED_CAPS_PREFIX}{key}"


def _salt(root: Path) -> bytes:
    """The server's random key for visitor folder names, made once (the first process to ask writes it)."""
    path = root / VISITOR_SALT
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{VISITOR_SALT}.{secrets.token_hex(4)}"
    tmp.write_bytes(secrets.token_bytes(32))
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # atomic and never overwrites: two processes agree on the first key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


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
    removed, emptied = [], set()
    visitors = sorted(p for p in (root / SESSIONS).glob(quota.SHARED_CAPS_PREFIX + "*") if p.is_dir())
    for ws in sorted([*(root / SESSIONS).glob("*"), *(p for v in visitors for p in v.glob("*"))]):
        if not ws.is_dir() or not _SESSION_ID.match(ws.name):
            continue
        idle = now - last_seen(ws)
        expired = idle > ttl or (idle > EMPTY_TTL_SECONDS and _holds_nothing(ws))
        if not expired or runs.active_runs(ws) or _studying(ws):
            _remove_stale_imports(ws, now)
            continue
        shutil.rmtree(ws, ignore_errors=True)
        removed.append(ws.name)
        emptied.add(ws.parent)
    for folder in visitors:  # a visitor whose sessions are all gone
        try:
            if folder in emptied or now - folder.stat().st_mtime > EMPTY_TTL_SECONDS:
                folder.rmdir()
        except OSError:
            continue  # not empty, or gone already
    for ws in sorted((root / USERS).glob("*")):
        _remove_stale_imports(ws, now)
    return removed


def _studying(ws: Path) -> bool:
    """True while a study of this workspace is queued or running (between trials it has no active run)."""
    for status_file in ws.glob("studies/*/status.json"):  # core.service.studies keeps studies in ws/studies/<id>/
        status = runs.read_status(status_file.parent)
        if status.get("state") in ("queued", "running") and runs.process_alive(status):
            return True
    return False


def _holds_nothing(ws: Path) -> bool:
    """True when the workspace has no file but its last-seen mark (empty folders do not count)."""
    for folder, _, names in os.walk(ws):
        if any(not (name == LAST_SEEN and Path(folder) == ws) for name in names):
            return False
    return True


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
