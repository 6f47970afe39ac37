"""The typed run status: status.json keeps its keys, every key has one typed home, links go both ways."""

import json
import os
from pathlib import Path

import pytest

from core.spec.config import RunConfig
from core.store import runs
from core.store.status import COMPANIONS, RunStatus


def _config() -> RunConfig:
    return RunConfig(dataset_id="d", backbone="small_cnn", weights="none", strategy="from_scratch").validate()


def test_round_trip_keeps_every_key_and_types_the_known_ones():
    data = {"state": "done", "created": 1.0, "finished": 3.0, "pid": 7, "phase": "head", "phase_index": 1,
            "phases": 2, "test_accuracy": 0.5, "transfer_hurt": False, "baseline_run": "b", "study": "s",
            "trial": 3, "counts": {"COMPLETE": 2}}  # counts: a study's own key, kept as is
    status = RunStatus.from_dict(data)
    assert status.to_dict() == data
    assert (status.timings.finished, status.process.pid, status.progress.phase) == (3.0, 7, "head")
    assert (status.figures.test_accuracy, status.verdicts.transfer_hurt) == (0.5, False)
    assert status.links.companion("baseline") == "b" and status.extra == {"counts": {"COMPLETE": 2}}
    assert status.ended


def test_update_status_merges_clears_and_refuses_unknown_states(tmp_path):
    run_dir = runs.create_run(_config(), tmp_path)
    runs.update_status(run_dir, "running", pid=5, message="hello", future_field=1)
    runs.update_status(run_dir, message=None)
    on_disk = json.loads((run_dir / "status.json").read_text())
    assert on_disk["state"] == "running" and on_disk["pid"] == 5 and on_disk["future_field"] == 1
    assert "message" not in on_disk and on_disk["updated"] >= on_disk["created"]
    with pytest.raises(AssertionError):
        runs.update_status(run_dir, "exploded")


def test_unreadable_status_reads_as_unknown(tmp_path):
    (tmp_path / "status.json").write_text('{"state": "runn')  # half-written
    assert runs.read_status(tmp_path) == {"state": "unknown"} and runs.load_status(tmp_path).state == "unknown"


def test_create_run_with_parent_links_and_companions_both_ways(tmp_path):
    trial = runs.create_run(_config(), tmp_path, study="study-1", trial=4)
    assert runs.load_status(trial).links.study == "study-1" and runs.read_status(trial)["trial"] == 4
    with pytest.raises(TypeError):
        runs.create_run(_config(), tmp_path, stuyd="typo")
    main, other = runs.create_run(_config(), tmp_path), runs.create_run(_config(), tmp_path)
    runs.link_companion(main, "source_only", other)
    assert runs.load_status(main).links.companion("source_only") == other.name
    assert runs.load_status(other).links.companion_of() == ("source_only", main.name)
    assert set(COMPANIONS) == {"baseline", "source_only", "student_alone"}


def test_edit_status_writes_typed_fields_once(tmp_path):
    run_dir = runs.create_run(_config(), tmp_path)
    with runs.edit_status(run_dir) as status:
        status.state = "done"
        status.figures.val_accuracy = 0.75
    assert runs.read_status(run_dir)["val_accuracy"] == 0.75 and runs.read_status(run_dir)["state"] == "done"


def test_a_runs_life_through_the_typed_transitions(tmp_path):
    run_dir = runs.create_run(_config(), tmp_path)
    runs.record_process(run_dir, os.getpid())
    status = runs.load_status(run_dir)
    assert (status.state, status.process.pid) == ("queued", os.getpid())
    assert status.process.pid_started == runs.start_time(os.getpid())
    runs.update_status(run_dir, message="an old sentence")
    runs.mark_running(run_dir)
    status = runs.load_status(run_dir)
    assert status.state == "running" and status.message is None and status.timings.started is not None
    runs.mark_ended(run_dir, "cancelled", "Stopped by you.", train_seconds=3.5)
    status = runs.load_status(run_dir)
    assert (status.state, status.message, status.timings.train_seconds) == ("cancelled", "Stopped by you.", 3.5)
    assert status.timings.finished >= status.timings.started and status.ended
    with pytest.raises(ValueError, match="not how a run ends"):
        runs.mark_ended(run_dir, "running", None)
    runs.mark_queued(run_dir)  # a resume: no process, no end, no message until its new process records itself
    on_disk = json.loads((run_dir / "status.json").read_text())
    assert on_disk["state"] == "queued" and on_disk["train_seconds"] == 3.5
    assert not {"pid", "pid_started", "finished", "message"} & set(on_disk)


def test_no_core_module_writes_status_through_loose_keyword_dicts():
    root = Path(__file__).resolve().parents[3]
    loose = [str(p.relative_to(root)) for folder in ("core", "pages") for p in (root / folder).rglob("*.py")
             if "update_status(" in p.read_text(encoding="utf-8") and p.name != "runs.py"]
    assert loose == []
