import os
import time

from core import jobs, runs
from core.config import AugmentConfig, RunConfig


def _wait_finished(run_dir, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = runs.read_status(run_dir).get("state")
        if state in runs.FINISHED:
            return state
        time.sleep(0.5)
    raise AssertionError(f"run still {state} after {seconds}s")


def test_submit_trains_in_a_child_process(tiny, ws):
    cfg = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=1,
                    batch_size=8, patience=0, augment=AugmentConfig(flip=False, rotate=False)).validate()
    run_id = jobs.submit(cfg, ws)
    run_dir = runs.run_path(run_id, ws)
    assert runs.read_status(run_dir)["pid"] != os.getpid()
    assert _wait_finished(run_dir) == "done", (run_dir / "job.log").read_text()
    p = jobs.progress(run_id, ws)
    assert p["fraction"] == 1.0 and len(p["history"]) == 1
    assert (run_dir / "model.keras").is_file() and (run_dir / "eval.json").is_file()


def test_progress_counts_every_phase_of_the_strategy(tiny, ws):
    cfg = RunConfig(dataset_id=tiny["id"], strategy="fine_tune", epochs=2, fine_tune_epochs=2).validate()
    run_dir = runs.create_run(cfg, ws)
    runs.update_status(run_dir, "running", pid=os.getpid())
    runs.append_event(run_dir, {"type": "phase_start", "phase": "head", "index": 1, "phases": 2, "epochs": 2,
                                "steps": 4, "trainable_params": 10})
    for epoch in (1, 2):
        runs.append_event(run_dir, {"type": "epoch_end", "phase": "head", "epoch": epoch, "epochs": 2, "seconds": 1.0,
                                    "metrics": {"loss": 1.0}})
    assert jobs.progress(run_dir.name, ws)["fraction"] == 0.5  # 2 of 4 epochs, not 2 of 2


def test_a_run_whose_process_died_is_marked_interrupted(tiny, ws):
    run_dir = runs.create_run(RunConfig(dataset_id=tiny["id"]), ws)
    runs.update_status(run_dir, "running", pid=2**22 + 12345, created=time.time() - 60)
    assert jobs.reconcile(ws) == [run_dir.name]
    status = runs.read_status(run_dir)
    assert status["state"] == "interrupted" and "ended unexpectedly" in status["message"]
