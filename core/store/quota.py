"""The caps of a shared server on one workspace: the disk space it may fill (TL_WORKSPACE_QUOTA_MB)
and how many runs it may have waiting or training at once (TL_MAX_ACTIVE_RUNS)."""

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


def room_bytes(ws: Path) -> int | None:
    """How many more bytes the workspace may hold (negative when over; None: no quota)."""
    quota = settings.workspace_quota_bytes()
    return None if quota is None else quota - workspace_bytes(ws)


def check_room(ws: Path, adding: int = 0) -> int | None:
    """The workspace's room in bytes (None: no quota); QuotaExceeded when `adding` bytes would not fit."""
    room = room_bytes(ws)
    if room is not None and adding > room:
        quota = settings.workspace_quota_bytes()
        raise QuotaExceeded(
            f"Your workspace would hold {(quota - room + adding) / 2**20:,.0f} MB, more than the {quota / 2**20:,.0f} MB "
            "this server allows; delete a dataset on the Data page or runs on the Compare page, then try again."
        )
    return room


def check_active_runs(ws: Path) -> None:
    """QuotaExceeded when the workspace already has as many waiting or training runs as allowed."""
    cap = settings.max_active_runs()
    if cap is None:
        return
    active = runs.active_runs(ws)
    if len(active) >= cap:
        raise QuotaExceeded(
            f"You already have {len(active)} run(s) waiting or training, the most this shared server allows at once; "
            "wait for one to finish or cancel it on the Train page."
        )
