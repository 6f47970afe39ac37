"""Helpers and fixtures for the page tests: tiny datasets and fake runs (the workspace is tests/conftest.py's `ws`).

Nothing here trains: runs are folders written the way core writes them, so the pages can be
checked in seconds and without TensorFlow.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data import importer
from core.spec.config import RunConfig
from core.store import runs
from tests.conftest import ROOT

TIMEOUT = 90  # a script run that imports TensorFlow on a busy 2-core machine can take half a minute


def app_test(name: str) -> AppTest:
    """An AppTest of one page file (pages/<name>.py), or of the app entry point for 'app'."""
    path = ROOT / "app.py" if name == "app" else ROOT / "pages" / f"{name}.py"
    return AppTest.from_file(str(path), default_timeout=TIMEOUT)


def assert_clean(at: AppTest) -> None:
    """No exception element and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def plotly_charts(at: AppTest) -> list[Any]:
    return list(at.get("plotly_chart"))


def image_bytes(colour: tuple[int, int, int], fmt: str = "PNG", size: int = 32) -> bytes:
    rng = np.random.default_rng(sum(colour))
    arr = np.clip(np.array(colour) + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def class_zip(per_class: int = 3, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of two class folders (red, blue) of small PNGs, plus any extra members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            for i in range(per_class):
                zf.writestr(f"{label}/{label}_{i}.png", image_bytes(colour))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _not_hosted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages behave as on a private computer unless a test sets TL_HOSTED itself."""
    monkeypatch.delenv("TL_HOSTED", raising=False)


@pytest.fixture
def tiny_dataset(ws: Path, tmp_path: Path) -> dict[str, Any]:
    """A two-class dataset of 3 images per class (enough to import, too few to train)."""
    src = tmp_path / "tiny"
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (src / label).mkdir(parents=True)
        for i in range(3):
            (src / label / f"{i}.png").write_bytes(image_bytes(colour))
    return importer.import_path(src, ws, name="tiny")


EVAL = {
    "split": "test",
    "n": 10,
    "classes": ["blue", "red"],
    "accuracy": 0.9,
    "macro": {"precision": 0.9166667, "recall": 0.9, "f1-score": 0.8989899},
    "weighted": {"precision": 0.9166667, "recall": 0.9, "f1-score": 0.8989899},
    "per_class": [
        {"class": "blue", "precision": 0.8333333, "recall": 1.0, "f1": 0.9090909, "support": 5},
        {"class": "red", "precision": 1.0, "recall": 0.8, "f1": 0.8888889, "support": 5},
    ],
    "confusion_matrix": [[5, 0], [1, 4]],
}


@pytest.fixture
def make_run(ws: Path) -> Callable[..., Path]:
    """Write a run folder as core would: config.json, status.json, and for finished runs eval/split/model."""
    counter = iter(range(100))

    def make(state: str = "done", dataset_id: str = "tiny-0123abcd", model: bool = True,
             status: dict[str, Any] | None = None, events: list[dict[str, Any]] | None = None,
             **config: Any) -> Path:
        run_dir = ws / "runs" / f"20260101-1200{next(counter):02d}-{os.urandom(6).hex()}"
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(RunConfig(dataset_id=dataset_id, **config).to_json())
        full_status = {"state": state, "created": 0.0}
        if state == "done":
            full_status |= {"train_seconds": 12.5, "test_accuracy": EVAL["accuracy"]}
        full_status |= status or {}
        (run_dir / "status.json").write_text(json.dumps(full_status))
        if state in ("done", "cancelled"):
            (run_dir / "split.json").write_text(json.dumps({"classes": EVAL["classes"], "train": [], "val": [], "test": []}))
            if model:
                (run_dir / "model.keras").write_bytes(b"not a real model, only bytes to download")
        if state == "done":
            (run_dir / "eval.json").write_text(json.dumps(EVAL))
        for event in events or []:
            runs.append_event(run_dir, event)
        return run_dir

    return make
