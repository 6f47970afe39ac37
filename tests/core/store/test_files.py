"""Atomic writes and the sweeping of temporary names a killed process left behind."""

import json
import os

import pytest

from core.store import files, runs
from tests.core.store.helpers import gone_process


def test_a_crash_mid_write_leaves_the_old_json_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    files.write_json(path, {"state": "done", "n": 1})

    def dies_half_way(data, f, **kwargs):
        f.write('{"state": "ru')
        raise KeyboardInterrupt  # a BaseException, as a kill at the wrong moment would be

    monkeypatch.setattr(json, "dump", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        files.write_json(path, {"state": "running"})
    monkeypatch.undo()
    assert files.read_json(path) == {"state": "done", "n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_atomic_target_publishes_only_a_finished_file(tmp_path):
    path = tmp_path / "model.weights.h5"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_target(path) as tmp:
            assert tmp.name.endswith(".weights.h5") and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [path.name]
    with files.atomic_target(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_sweep_removes_the_leftovers_of_dead_processes_only(tmp_path):
    pid, started = gone_process()
    dead_file = tmp_path / f".import-{pid}-{started or 0}-abc.tmp"
    dead_dir = tmp_path / f".import-{pid}-{started or 0}-xyz"
    dead_file.write_text("x")
    (dead_dir / "sub").mkdir(parents=True)
    ours = tmp_path / f"{runs.scratch_prefix('.import-')}mine"
    ours.write_text("still being written")
    unrelated = tmp_path / ".export-1-0-other"
    unrelated.write_text("another prefix")
    assert str(os.getpid()) in ours.name
    assert sorted(runs.sweep_scratch(tmp_path, ".import-")) == sorted([dead_file, dead_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ours.name, unrelated.name])
    assert runs.sweep_scratch(tmp_path / "missing", ".import-") == []
