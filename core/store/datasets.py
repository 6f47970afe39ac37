"""Dataset records in the workspace: `datasets/<id>/` with its images and `dataset.json`, found, listed
and deleted. Making a dataset (import, samples) is core.data's work; this module only keeps them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

from core import settings
from core.errors import DatasetError
from core.store.files import read_json, write_json

_DATASET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}-[0-9a-f]{8,12}$")


def datasets_root(ws: Path) -> Path:
    """The folder holding every dataset of a workspace."""
    return ws / "datasets"


def dataset_path(dataset_id: str, ws: Path) -> Path:
    """The folder of an existing dataset; DatasetError for an unknown or malformed id."""
    path = datasets_root(ws) / dataset_id
    if not _DATASET_ID.match(dataset_id) or not (path / "dataset.json").is_file():
        if settings.hosted():  # a shared server: no server path, no session id (the folder's name)
            raise DatasetError(f"There is no dataset '{dataset_id}' in your workspace (it may have been deleted); "
                               "load the sample or import one on the Data page.")
        raise DatasetError(
            f"There is no dataset '{dataset_id}' in {ws}; import one or run 'python -m core dataset sample shapes'."
        )
    return path


def load_dataset(dataset_id: str, ws: Path) -> dict[str, Any]:
    """The dataset.json of an existing dataset."""
    return read_json(dataset_path(dataset_id, ws) / "dataset.json")


def list_datasets(ws: Path) -> list[dict[str, Any]]:
    """Every dataset in the workspace, newest first."""
    root = datasets_root(ws)
    if not root.is_dir():
        return []
    out = []
    for path in root.iterdir():
        if _DATASET_ID.match(path.name) and (path / "dataset.json").is_file():
            try:
                out.append(read_json(path / "dataset.json"))
            except ValueError:
                continue
    return sorted(out, key=lambda d: d.get("created", 0), reverse=True)


def is_target(info: dict[str, Any]) -> bool:
    """Whether a dataset holds images from where the model will be used (marked, or imported without labels)."""
    return info.get("role") == "target" or not info["classes"]


def mark_target(dataset_id: str, ws: Path, target: bool) -> dict[str, Any]:
    """Mark (or unmark) a dataset as images from where the model will be used; returns the updated record.

    A dataset without classes stays a target: it has no labels to train on.
    """
    path = dataset_path(dataset_id, ws) / "dataset.json"
    info = read_json(path)
    if not target and not info["classes"]:
        raise DatasetError(f"The dataset '{info['name']}' has no labels, so it can only be images from where the "
                           "model will be used (a target).")
    if target:
        info["role"] = "target"
    else:
        info.pop("role", None)
    write_json(path, info)
    return info


def delete_dataset(dataset_id: str, ws: Path) -> None:
    """Remove a dataset folder."""
    shutil.rmtree(dataset_path(dataset_id, ws))


def runs_using(dataset_id: str, ws: Path) -> list[str]:
    """Ids of the training runs whose config names this dataset (their test images go with it)."""
    found = []
    for config in sorted((ws / "runs").glob("*/config.json")):
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("dataset_id") == dataset_id:
                found.append(config.parent.name)
        except (OSError, ValueError):
            continue
    return found


def iter_thumbnails(info: dict[str, Any], ws: Path, per_class: int = 6) -> Iterator[tuple[str, Path]]:
    """(class, image path) for the first few images of each class, for a gallery."""
    root = dataset_path(info["id"], ws)
    for label in info["classes"]:
        for rel in info["images"][label][:per_class]:
            yield label, root / rel
