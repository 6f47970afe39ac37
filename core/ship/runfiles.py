"""What an export reads of a trained run: its split, its classes in output order, its test and
training images, and its model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.data import tfdata
from core.engine import modeling
from core.errors import ExportError, RunStateError
from core.spec.config import RunConfig
from core.store import datasets, runs
from core.store.files import read_json

EXPORTABLE_STATES = ("done", "cancelled")  # a cancelled run keeps the best model it reached


def exports_dir(run_dir: Path) -> Path:
    """The run's exports/ folder (inside the run folder, like everything a run writes)."""
    return run_dir / "exports"


def read_split(run_dir: Path) -> dict[str, Any]:
    """split.json of a trained run: the classes, and which images trained, validated and tested it."""
    if not (run_dir / "split.json").is_file():
        raise RunStateError(f"Run '{run_dir.name}' has not been trained yet, so there is nothing to export.")
    return read_json(run_dir / "split.json")


def check_ready(run_dir: Path) -> None:
    """Raise RunStateError unless the run has a finished, saved model."""
    state = runs.read_status(run_dir).get("state", "unknown")
    if state not in EXPORTABLE_STATES or not (run_dir / "model.keras").is_file():
        raise RunStateError(f"Run '{run_dir.name}' has no finished model to export yet (state: {state}).")
    read_split(run_dir)


def classes(run_dir: Path) -> list[str]:
    """Class names in the order of the model's outputs (the training labels are their indices)."""
    return list(read_split(run_dir)["classes"])


def labels_text(run_dir: Path) -> str:
    """labels.txt: one class name per line, line i naming output i."""
    return "".join(f"{name}\n" for name in classes(run_dir))


def dataset_root(run_dir: Path, config: RunConfig) -> Path:
    """The folder of the dataset a run trained on (DatasetError when it was deleted since)."""
    return datasets.dataset_path(config.dataset_id, run_dir.parent.parent)


def part_images(run_dir: Path, part: str, limit: int | None = None, shuffle_seed: int | None = None) -> Any:
    """(float32 0-255 images, labels) batches of one split part, streamed from the dataset folder."""
    config = runs.load_config(run_dir)
    items = [tuple(item) for item in read_split(run_dir)[part]]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(items))
        items = [items[i] for i in order]
    items = items[:limit] if limit else items
    if not items:
        raise ExportError(f"The run's {part} split is empty, so the export cannot be checked on it.")
    return tfdata.pipeline(dataset_root(run_dir, config), items, config.image_size, 32, False, config.seed)


def load_model(run_dir: Path) -> Any:
    """The run's trained Keras model (imports TensorFlow)."""
    return modeling.load(run_dir / "model.keras")
