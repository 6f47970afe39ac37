"""The caps of a shared server on one workspace: the disk space it may fill (TL_WORKSPACE_QUOTA_MB)
and how many runs it may have waiting or training at once (TL_MAX_ACTIVE_RUNS).

Workspaces side by side in a folder named `visitor-…` (one visitor's browser tabs, core.service.hosting)
share the caps: their bytes and their active runs are counted together."""

from __future__ import annotations

import os
from pathlib import Path

from core import settings
from core.errors import QuotaExceeded
from core.store import runs


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


# A folder whose name starts with this holds workspaces that share the caps.
SHARED_CAPS_PREFIX = "visitor-"


def sharing(ws: Path) -> list[Path]:
    """The workspaces whose caps this one shares: itself, and any beside it in a `visitor-…` folder."""
    if not ws.parent.name.startswith(SHARED_CAPS_PREFIX) or not ws.parent.is_dir():
        return [ws]
    return [ws, *sorted(p for p in ws.parent.iterdir() if p.is_dir() and p != ws)]


def room_bytes(ws: Path) -> int | None:
    """How many more bytes the workspace may hold (negative when over; None: no quota)."""
    quota = settings.workspace_quota_bytes()
    return None if quota is None else quota - sum(workspace_bytes(w) for w in sharing(ws))


def _yours(ws: Path) -> str:
    return "your browser tabs together" if len(sharing(ws)) > 1 else "your workspace"


def check_room(ws: Path, adding: int = 0) -> int | None:
    """The workspace's room in bytes (None: no quota); QuotaExceeded when `adding` bytes would not fit."""
    room = room_bytes(ws)
    if room is not None and adding > room:
        quota = settings.workspace_quota_bytes()
        raise QuotaExceeded(
            f"{_yours(ws).capitalize()} would hold {(quota - room + adding) / 2**20:,.0f} MB, more than the {quota / 2**20:,.0f} MB "
            "this server allows; delete a dataset on the Data page or runs on the Compare page, then try again."
        )
    return room


def check_active_runs(ws: Path) -> None:
    """QuotaExceeded when the workspace already has as many waiting or training runs as allowed."""
    cap = settings.max_active_runs()
    if cap is None:
        return
    active = [r for w in sharing(ws) for r in runs.active_runs(w)]
    if len(active) >= cap:
        where = " in your browser tabs together" if len(sharing(ws)) > 1 else ""
        raise QuotaExceeded(
            f"You already have {len(active)} run(s) waiting or training{where}, the most this shared server allows "
            "at once; wait for one to finish or cancel it on the Train page."
        )
