"""Shared fixtures: tiny generated datasets in temporary workspaces; an empty, offline Keras home."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Tests never reach for the internet: a missing weights file must fail at once, not download.
os.environ["TL_OFFLINE"] = "1"

from core.data.importer import import_path  # noqa: E402 - after the project root is on sys.path
from core.data.samples import SHAPE_CLASSES, generate_shapes  # noqa: E402
from core.engine import training  # noqa: E402 - imports no TensorFlow until a test trains
from core.spec.config import RunConfig  # noqa: E402
from core.store import runs  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test sees an empty Keras cache unless it puts weights there itself."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """An empty workspace."""
    path = tmp_path / "workspace"
    path.mkdir()
    monkeypatch.setenv("TL_WORKSPACE", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A folder of 3 class folders x 12 small generated images."""
    src = generate_shapes(tmp_path_factory.mktemp("src") / "tiny", per_class=12, size=40, seed=1)
    for extra in SHAPE_CLASSES[3:]:
        for f in (src / extra).iterdir():
            f.unlink()
        (src / extra).rmdir()
    return src


@pytest.fixture
def tiny(ws, tiny_source) -> dict:
    """The tiny dataset imported into the test's workspace (its dataset.json)."""
    return import_path(tiny_source, ws, name="tiny")


def trained_small_cnn(ws: Path, source: Path) -> Path:
    """A finished run in `ws`: a small CNN from scratch (32 px, 2 epochs) on `source` imported as 'tiny'."""
    info = import_path(source, ws, name="tiny")
    cfg = RunConfig(dataset_id=info["id"], backbone="small_cnn", weights="none", strategy="from_scratch",
                    image_size=32, epochs=2, batch_size=8, patience=0).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    return run_dir


# The longest test files (seconds on 2 shared cores, summed per file from a --durations profile) are collected
# first. With `-n 2 --dist loadfile` a file runs whole on one worker, and a long walk left for the end keeps one
# core idle while the other finishes it. Note: xdist then sorts files by their number of tests (most first), so
# this order decides only among files of equal count (the one-test browser walks); `--no-loadscope-reorder` would
# make it decide everything, but it is not used yet (one trial run had a failure that was not looked into).
LONGEST_FIRST = (
    "tests/core/engine/test_training.py",  # 406
    "tests/e2e/test_teacher_walk.py",  # 211
    "tests/core/service/test_jobs.py",  # 193
    "tests/core/test_faults.py",  # 188
    "tests/core/engine/test_transfer.py",  # 168
    "tests/e2e/test_walk.py",  # 133
    "tests/core/ship/test_pruning.py",  # 118
    "tests/e2e/test_hosted.py",  # 112
    "tests/core/service/test_shared_studies.py",  # 111
    "tests/core/ship/test_export.py",  # 106
    "tests/e2e/test_sound_walk.py",  # 103
    "tests/core/service/test_studies.py",  # 93
    "tests/pages/test_predictions.py",  # 85
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(pair):
        index, item = pair
        path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        return rank.get(path, len(rank)), index

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]
