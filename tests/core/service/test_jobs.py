import os
import signal
import time

import pytest

from core.engine import training
from core.errors import RunStateError
from core.service import jobs, worker
from core.spec import backbones
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs
from tests.conftest import SHARED


def _until(predicate, seconds=120, what="condition"):
    """Poll the run folder until predicate() holds (no fixed sleeps), failing after a timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(run_dir):
    state = runs.read_status(run_dir).get("state")
    return state if state in runs.FINISHED else None


def _cfg(tiny, **changes):
    base = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=1,
                     batch_size=8, patience=0, augment=AugmentConfig(flip=False, rotate=False))
    return base.with_changes(**changes).validate()


def test_submit_trains_in_a_child_process(tiny, ws):
    run_id = jobs.submit(_cfg(tiny), ws)
    run_dir = runs.run_path(run_id, ws)
    assert runs.read_status(run_dir)["pid"] != os.getpid()
    assert _until(lambda: _finished(run_dir), what="done") == "done", (run_dir / "job.log").read_text()
    p = jobs.progress(run_id, ws)
    assert p["fraction"] == 1.0 and len(p["history"]) == 1 and p["feature_pass"]["images"] > 0
    assert (run_dir / "model.keras").is_file() and (run_dir / "eval.json").is_file()


def test_jobs_queue_one_at_a_time_with_positions(tiny, ws):
    first = runs.run_path(jobs.submit(_cfg(tiny, epochs=3), ws), ws)
    second = runs.run_path(jobs.submit(_cfg(tiny), ws), ws)
    third = runs.run_path(jobs.submit(_cfg(tiny), ws), ws)
    _until(lambda: runs.read_status(first)["state"] == "running", what="first running")
    _until(lambda: runs.read_status(third).get("queue_position") == 2, what="third waiting second in line")
    assert jobs.progress(second.name, ws)["queue_position"] == 1
    assert jobs.progress(second.name, ws)["runs_ahead"] == 1 and jobs.progress(third.name, ws)["runs_ahead"] == 2
    jobs.cancel(third.name, ws)
    assert _until(lambda: _finished(third), what="third cancelled") == "cancelled"
    assert runs.read_status(third)["message"] == "Cancelled before it started."
    assert _until(lambda: _finished(second), what="second done") == "done"
    started = {d: runs.read_status(d)["started"] for d in (first, second)}
    assert started[second] >= runs.read_status(first)["finished"] - 1.0  # never both at once


def test_killed_job_is_interrupted_and_resumes_from_its_checkpoint(tiny, ws):
    run_id = jobs.submit(_cfg(tiny, epochs=40), ws)
    run_dir = runs.run_path(run_id, ws)
    _until(lambda: any(e["type"] == "epoch_end" for e in runs.read_events(run_dir)), what="an epoch")
    pid = runs.read_status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    _until(lambda: not runs.alive(pid), what="the process to end")
    assert jobs.progress(run_id, ws)["state"] == "interrupted"
    jobs.resume(run_id, ws)
    assert _until(lambda: _finished(run_dir), what="resumed run done") == "done", (run_dir / "job.log").read_text()
    assert any("Resumed from the last checkpoint" in n for n in jobs.progress(run_id, ws)["notices"])
    assert sum(1 for e in runs.read_events(run_dir) if e["type"] == "epoch_end") >= 40


def test_resume_refuses_runs_that_cannot_resume(tiny, ws):
    run_dir = runs.create_run(_cfg(tiny), ws)
    runs.update_status(run_dir, "done")
    with pytest.raises(Exception, match="only interrupted or cancelled runs can be resumed"):
        jobs.resume(run_dir.name, ws)
    runs.update_status(run_dir, "running", pid=os.getpid(), pid_started=runs.start_time(os.getpid()))
    with pytest.raises(Exception, match="is being trained right now by another process"):
        jobs.resume(run_dir.name, ws)


def test_watchdog_stops_a_job_hard_after_the_grace_period(tiny, ws, monkeypatch):
    run_dir = runs.create_run(_cfg(tiny), ws)
    runs.update_status(run_dir, "running", pid=os.getpid())
    runs.request_cancel(run_dir)
    exits = []
    monkeypatch.setattr(worker.os, "_exit", exits.append)
    worker._watchdog(run_dir, grace=0.0)
    status = runs.read_status(run_dir)
    assert exits == [3] and status["state"] == "cancelled" and "stopped hard" in status["message"]


def test_progress_counts_every_phase_of_the_strategy(tiny, ws):
    cfg = RunConfig(dataset_id=tiny["id"], strategy="fine_tune", epochs=2, fine_tune_epochs=2).validate()
    run_dir = runs.create_run(cfg, ws)
    runs.update_status(run_dir, "running", pid=os.getpid())
    runs.append_event(run_dir, {"type": "phase_start", "phase": "head", "index": 1, "phases": 2, "epochs": 2,
                                "steps": 4, "trainable_params": 10})
    for epoch in (1, 2):
        runs.append_event(run_dir, {"type": "epoch_end", "phase": "head", "epoch": epoch, "epochs": 2, "seconds": 1.0,
                                    "metrics": {"loss": 1.0}})
    p = jobs.progress(run_dir.name, ws)
    assert p["fraction"] == 0.5  # 2 of 4 epochs, not 2 of 2
    assert p["planned_phases"] == ["head", "fine_tune"]
    # The fine-tuning epochs (backbone trained) are not timed by the head's: counted apart until they start.
    assert p["eta_seconds"] == pytest.approx(0.0) and p["eta_pending_epochs"] == 2


def test_a_run_whose_process_died_is_marked_interrupted(tiny, ws):
    run_dir = runs.create_run(RunConfig(dataset_id=tiny["id"]), ws)
    runs.update_status(run_dir, "running", pid=2**22 + 12345, created=time.time() - 60)
    assert runs.reconcile(ws) == [run_dir.name]
    status = runs.read_status(run_dir)
    assert status["state"] == "interrupted" and "ended unexpectedly" in status["message"]


def test_transfer_run_is_compared_with_a_scratch_baseline(tiny, ws):

    cfg = _cfg(tiny, compare_scratch=True, epochs=2)
    run_dir = runs.create_run(cfg, ws)
    result = training.train_and_compare(cfg, run_dir)
    # weights "none" here: nothing to compare, said in a sentence rather than a fake baseline
    assert "baseline_run" not in result and "already trained from scratch" in runs.read_status(run_dir)["baseline_note"]


@pytest.mark.skipif(not (SHARED / "keras-cache" / "models" / "mobilenet_2_5_224_tf_no_top.h5").is_file(),
                    reason="../shared/keras-cache is not beside the project")
def test_transfer_hurt_flag_compares_with_a_from_scratch_network_trained_its_best_way(tiny, ws, _isolated_home,
                                                                                       monkeypatch):
    import shutil


    models = _isolated_home / ".keras" / "models"
    models.mkdir(parents=True)
    shutil.copy(SHARED / "keras-cache" / "models" / "mobilenet_2_5_224_tf_no_top.h5", models)
    cfg = _cfg(tiny, weights="imagenet", compare_scratch=True, epochs=2, patience=1)
    monkeypatch.setitem(backbones.get("small_cnn").scratch_recipe, "epochs", 3)  # a short recipe for the test
    run_dir = runs.create_run(cfg, ws)
    result = training.train_and_compare(cfg, run_dir)
    status = runs.read_status(run_dir)
    baseline_dir = runs.run_path(status["baseline_run"], ws)
    baseline = runs.load_config(baseline_dir)
    # The baseline is what works without pretrained weights: the small CNN with its measured recipe (as the offline
    # fallback trains it), for at least the run's budget, without early stopping; not MobileNet from random weights.
    recipe = backbones.get("small_cnn").scratch_recipe
    assert (baseline.backbone, baseline.weights, baseline.strategy) == ("small_cnn", "none", "from_scratch")
    assert (baseline.epochs, baseline.patience, baseline.schedule) == (recipe["epochs"], 0, recipe["schedule"])
    assert runs.read_status(baseline_dir)["baseline_of"] == run_dir.name
    assert status["transfer_hurt"] == (status["val_accuracy"] < status["baseline_val_accuracy"])
    assert result["transfer_hurt"] == status["transfer_hurt"]


def test_cancel_mid_training_keeps_the_best_checkpoint(tiny, ws):
    run_id = jobs.submit(_cfg(tiny, epochs=60), ws)
    run_dir = runs.run_path(run_id, ws)
    _until(lambda: any(e["type"] == "epoch_end" for e in runs.read_events(run_dir)), what="an epoch")
    jobs.cancel(run_id, ws)
    assert _until(lambda: _finished(run_dir), what="cancelled") == "cancelled"
    epochs = sum(1 for e in runs.read_events(run_dir) if e["type"] == "epoch_end")
    assert 1 <= epochs < 60
    assert (run_dir / "model.keras").is_file() and runs.checkpoint_files(run_dir / "checkpoints" / "best") is not None
    assert "best model so far was kept" in runs.read_status(run_dir)["message"]


def test_another_process_finished_child_is_not_alive():
    """A job ended but not yet reaped by its parent (the server) is a zombie: it no longer holds a queue slot."""
    import subprocess
    import sys

    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'pass']); "
            "print(c.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        _until(lambda: not runs.alive(child), what="the unreaped child to count as ended")
        assert runs.alive(parent.pid)
    finally:
        parent.kill()
        parent.wait()


def test_a_recycled_pid_is_not_the_job():
    """After a crash the job's pid may belong to another program: its start time tells them apart."""
    me = os.getpid()
    assert runs.process_alive({"pid": me, "pid_started": runs.start_time(me)})
    assert not runs.process_alive({"pid": me, "pid_started": runs.start_time(me) + 1})
    assert runs.process_alive({"pid": me})  # older status files without a start time


def test_eta_times_each_phase_by_epochs_of_its_own_kind(tiny, ws):
    # A head on cached features (no augmentation) is fast; fine-tuning passes every image: timed apart.
    cfg = RunConfig(dataset_id=tiny["id"], strategy="fine_tune", epochs=3, fine_tune_epochs=9,
                    augment={"flip": False, "rotate": False}).validate()
    run_dir = runs.create_run(cfg, ws)
    runs.update_status(run_dir, "running", pid=os.getpid())

    def epoch(phase, n, seconds):
        runs.append_event(run_dir, {"type": "epoch_end", "phase": phase, "epoch": n, "epochs": 9, "seconds": seconds,
                                    "metrics": {"loss": 1.0}})

    runs.append_event(run_dir, {"type": "phase_start", "phase": "head", "index": 1, "phases": 2, "epochs": 3,
                                "steps": 4, "trainable_params": 10})
    for n in (1, 2):  # early stopping ends the head after 2 of 3 epochs
        epoch("head", n, 0.5)
    p = jobs.progress(run_dir.name, ws)
    assert p["eta_seconds"] == pytest.approx(0.5) and p["eta_pending_epochs"] == 9
    runs.append_event(run_dir, {"type": "phase_start", "phase": "fine_tune", "index": 2, "phases": 2, "epochs": 9,
                                "steps": 4, "trainable_params": 99})
    epoch("fine_tune", 1, 20.0)
    p = jobs.progress(run_dir.name, ws)
    assert p["eta_seconds"] == pytest.approx(8 * 20.0) and p["eta_pending_epochs"] == 0


def test_an_unfinished_pruning_is_not_resumed_as_a_training(tiny, ws):
    run_dir = runs.create_run(_cfg(tiny), ws)
    runs.update_status(run_dir, "interrupted", pruned_from="20200101-000000-000000000000")
    with pytest.raises(RunStateError, match="prune run 20200101-000000-000000000000 again"):
        runs.check_resumable(run_dir)


def test_the_learning_rate_finder_is_a_queued_job_counted_by_the_caps(tiny, ws, monkeypatch):
    from core.errors import QuotaExceeded

    job_id = jobs.submit_lr_find(_cfg(tiny), ws)
    job_dir = jobs.lr_find_path(job_id, ws)
    assert (jobs.queue_dir(ws) / "tickets" / f"{job_id}.json").is_file()  # in line with the runs
    assert runs.read_status(job_dir)["pid"] != os.getpid()
    done = _until(lambda: jobs.lr_find_state(job_id, ws)["state"] not in ("queued", "running"), what="finder done")
    assert done, (job_dir / "job.log").read_text()
    state = jobs.lr_find_state(job_id, ws)
    assert state["state"] == "done", state
    assert state["result"]["batches"] >= 20 and 0 < state["result"]["suggestion"] <= 1
    # A shared server's cap on waiting or training work counts it like a run.
    monkeypatch.setenv("TL_MAX_ACTIVE_RUNS", "1")
    busy = runs.run_path(jobs.submit(_cfg(tiny, epochs=30), ws), ws)
    try:
        with pytest.raises(QuotaExceeded):
            jobs.submit_lr_find(_cfg(tiny), ws)
    finally:
        jobs.cancel(busy.name, ws)
        _until(lambda: _finished(busy), what="cancelled")
