"""Drafts: settings a page is still editing, kept in the workspace so a browser reload does not lose them.

The Model page writes its current RunConfig here on every change and reads it back when a new
browser session opens (a reload). The workspace is already private to a user or session in hosted
mode, so a draft is too. One small JSON file per draft name, written atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.store.files import read_json, write_json

DRAFTS = "drafts"


def _path(ws: Path, name: str) -> Path:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"Draft names are lower-case words, not {name!r}.")
    return Path(ws) / DRAFTS / f"{name}.json"


def save(ws: Path, name: str, data: dict[str, Any]) -> None:
    """Keep a draft (replacing the last one of that name); skipped when nothing changed."""
    path = _path(ws, name)
    if load(ws, name) == data:
        return
    write_json(path, data)


def load(ws: Path, name: str) -> dict[str, Any] | None:
    """The last draft of that name, or None when there is none or it cannot be read."""
    path = _path(ws, name)
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def discard(ws: Path, name: str) -> None:
    """Forget a draft."""
    _path(ws, name).unlink(missing_ok=True)
