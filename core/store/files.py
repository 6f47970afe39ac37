"""The workspace folder and the one way files are written into it: JSON, atomically."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Iterator

from core import settings


def workspace(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: the argument, else TL_WORKSPACE, else ./workspace."""
    return settings.workspace_dir(path)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """Read a JSON file written by write_json."""
    return json.loads(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, with the same suffix, for a writer that takes a file name (Keras's save);
    renamed onto `path` when the block ends, removed if it fails. Readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Every suffix kept at the end: Keras picks the format by it (".weights.h5" is not plain ".h5").
    suffixes = "".join(path.suffixes)
    tmp = path.with_name(f".{path.name.removesuffix(suffixes)}.{secrets.token_hex(4)}.tmp{suffixes}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held for the block, shared by every process on this machine (fcntl.flock on `path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
