"""Fault injection: a process SIGKILLed at a chosen point (TL_FAULT_POINT, core/settings.py's fault()) loses nothing.

Each case runs the command line in a child process on the tiny dataset and kills it at one point: in the
feature pass, mid-epoch, while a checkpoint is being published, while model.keras is being saved, in a study
trial, during an import and during an export. Afterwards the run reads as interrupted, `resume` finishes it, the final model
loads and its evaluation is complete, and every file is either the old or the new version, never a torn one.
A disk that fills up while a checkpoint is written (OSError ENOSPC) gives a sentence and keeps the last good
checkpoint; a run that another process is training cannot be resumed a second time.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from core import cli
from core.data import splits
from core.engine import evaluation, modeling, training
from core.errors import RunStateError, TrainingFailed
from core.service import studies, tuner
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, runs
from tests.conftest import ROOT

KILLED = -signal.SIGKILL


def _cfg(tiny, **changes) -> RunConfig:
    # A frozen backbone (so the feature cache is used), tiny images, two epochs, no augmentation.
    base = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=2,
                     batch_size=8, patience=0, augment=AugmentConfig(flip=False, rotate=False))
    return base.with_changes(**changes).validate()


def _steps(tiny, cfg: RunConfig) -> int:
    return math.ceil(len(splits.split(tiny, cfg.val_fraction, cfg.test_fraction, cfg.seed)["train"]) / cfg.batch_size)


def _core(ws, *args, fault: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m core ARGS --workspace WS` in a fresh interpreter, killed by itself at `fault`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TL_FAULT_POINT", None)
    if fault:
        env["TL_FAULT_POINT"] = fault
    return subprocess.run([sys.executable, "-m", "core", *args, "--workspace", str(ws)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _train_killed(ws, tmp_path, cfg: RunConfig, fault: str):
    """Train from the command line until the fault point kills it; the run's folder."""
    config = tmp_path / "config.json"
    config.write_text(cfg.to_json(), encoding="utf-8")
    before = {p.name for p in runs.runs_root(ws).glob("*")}
    proc = _core(ws, "train", str(config), fault=fault)
    assert proc.returncode == KILLED, proc.stderr
    (run_dir,) = [p for p in runs.runs_root(ws).iterdir() if p.name not in before and p.is_dir()]
    return run_dir


def _intact(run_dir) -> None:
    """Every file of the run is whole: JSON parses, every published checkpoint reads back tensor by tensor."""
    import tensorflow as tf

    for path in run_dir.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    for name in ("last", "best"):
        files = runs.checkpoint_files(run_dir / "checkpoints" / name)
        if files is not None:
            reader = tf.train.load_checkpoint(str(files))
            for key in reader.get_variable_to_shape_map():
                reader.get_tensor(key)  # checks each tensor's checksum
    if (run_dir / "model.keras").exists():
        evaluation.load_model(run_dir)


def _cli(ws, capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([*args, "--workspace", str(ws)])
    out, err = capsys.readouterr()
    return code, out, err


def _state(ws, capsys, run_dir) -> str:
    """The run's state as `python -m core runs --json` tells it (that command reconciles first)."""
    code, out, _ = _cli(ws, capsys, "runs", "--json")
    assert code == 0
    return {r["id"]: r["state"] for r in json.loads(out)}[run_dir.name]


def _finished_and_complete(ws, capsys, run_dir, tiny, epochs: int = 2) -> None:
    """The run is done, its model loads, and `evaluate` scores every test image of every class."""
    assert runs.read_status(run_dir)["state"] == "done"
    assert sum(e["type"] == "epoch_end" for e in runs.read_events(run_dir)) == epochs  # none lost or trained twice
    _intact(run_dir)
    model = evaluation.load_model(run_dir)
    assert model.output_shape[-1] == len(tiny["classes"])
    code, out, _ = _cli(ws, capsys, "evaluate", run_dir.name, "--json")
    report = json.loads(out)
    test = json.loads((run_dir / "split.json").read_text())["test"]
    assert code == 0 and report["n"] == len(test) and len(report["per_class"]) == len(tiny["classes"])


def test_cli_train_killed_mid_epoch_resumes_from_the_command_line(tiny, ws, tmp_path, capsys):
    cfg = _cfg(tiny)
    run_dir = _train_killed(ws, tmp_path, cfg, fault=f"batch:{_steps(tiny, cfg) + 1}")  # first batch of epoch 2
    assert runs.read_status(run_dir)["state"] == "running"  # as the killed process left it
    assert _state(ws, capsys, run_dir) == "interrupted"
    assert runs.read_status(run_dir)["message"] == runs.INTERRUPTED_MESSAGE
    assert [e["epoch"] for e in runs.read_events(run_dir) if e["type"] == "epoch_end"] == [1]
    _intact(run_dir)
    proc = _core(ws, "resume", run_dir.name)
    assert proc.returncode == 0, proc.stderr
    assert "Resumed from the last checkpoint (1 epochs were already done)" in proc.stderr
    _finished_and_complete(ws, capsys, run_dir, tiny)


def test_killed_in_the_feature_pass_starts_again_and_leaves_no_half_cache(tiny, ws, tmp_path, capsys):
    run_dir = _train_killed(ws, tmp_path, _cfg(tiny), fault="feature_pass")
    cache = ws / "cache" / "features"
    assert not list(cache.glob("*.npz"))  # the features were computed, but no cache file is in place
    assert list(cache.glob("*.npz.tmp"))  # the killed write's temporary file, never read
    assert not modeling.checkpoint_exists(run_dir / "checkpoints" / "last")
    assert _state(ws, capsys, run_dir) == "interrupted"
    code, _, err = _cli(ws, capsys, "resume", run_dir.name)
    assert code == 0, err
    assert "starts again from the beginning" in err
    assert len(list(cache.glob("*.npz"))) == 1 and not list(cache.glob("*.npz.tmp"))  # the killed write swept
    _finished_and_complete(ws, capsys, run_dir, tiny)


def test_killed_while_publishing_a_checkpoint_keeps_the_previous_one(tiny, ws, tmp_path, capsys):
    # Saves: epoch 1 writes last (1) and best (2); the third is epoch 2's last, killed before it is published.
    run_dir = _train_killed(ws, tmp_path, _cfg(tiny), fault="checkpoint:3")
    folder = run_dir / "checkpoints"
    current = runs.checkpoint_files(folder / "last")
    written = {p.name.split(".")[0] for p in folder.glob("last-*")}
    assert current is not None and len(written) == 2  # the published epoch-1 files and the unpublished new ones
    _intact(run_dir)
    assert _state(ws, capsys, run_dir) == "interrupted"
    code, _, err = _cli(ws, capsys, "resume", run_dir.name)
    assert code == 0, err
    assert len({p.name.split(".")[0] for p in folder.glob("last-*")}) == 1  # leftovers cleared on the next save
    _finished_and_complete(ws, capsys, run_dir, tiny)


def test_killed_while_saving_the_model_leaves_no_torn_model_file(tiny, ws, tmp_path, capsys):
    run_dir = _train_killed(ws, tmp_path, _cfg(tiny), fault="model_save")
    assert not (run_dir / "model.keras").exists() and list(run_dir.glob(".model.*.tmp.keras"))
    assert _state(ws, capsys, run_dir) == "interrupted"
    code, _, err = _cli(ws, capsys, "resume", run_dir.name)  # every epoch is done: it saves and evaluates
    assert code == 0, err
    assert "2 epochs were already done" in err
    assert not list(run_dir.glob(".model.*.tmp.keras"))  # the killed save's leftover is cleared
    _finished_and_complete(ws, capsys, run_dir, tiny)


def test_killed_study_trial_reads_interrupted_and_the_study_finishes(tiny, ws, capsys, monkeypatch):
    monkeypatch.setenv("TL_STUDY_HEARTBEAT", "1")  # a killed worker's trial goes stale after 3 s
    study_id = studies.create(_cfg(tiny, epochs=1), ws, trials=2, search=["lr", "dropout"])
    proc = _core(ws, "tune", "--study", study_id, "--join", "--quiet", fault="batch:2")  # in the first trial
    assert proc.returncode == KILLED, proc.stderr
    (killed,) = studies.show(study_id, ws)["trials"]
    run_dir = runs.run_path(killed["run_id"], ws)
    assert _state(ws, capsys, run_dir) == "interrupted"
    _intact(run_dir)
    # SQLite keeps heartbeats to the second, so 3 s of grace can need up to 4 s of silence to count as stale.
    time.sleep(4.5)
    result = tuner.work(study_id, ws)  # another worker (or the same command again) goes on with the study
    rows = studies.show(study_id, ws)["trials"]
    assert rows[0]["state"] == "failed" and rows[1]["params"] == killed["params"]  # its settings were tried again
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 2
    _finished_and_complete(ws, capsys, runs.run_path(rows[1]["run_id"], ws), tiny, epochs=1)


def test_killed_import_leaves_no_dataset(ws, tiny_source):
    proc = _core(ws, "dataset", "import", str(tiny_source), "--name", "tiny", fault="import:5")
    assert proc.returncode == KILLED
    assert datasets.list_datasets(ws) == []
    assert [p.name.startswith(".import-") for p in (ws / "datasets").iterdir()] == [True]  # only the temporary folder
    proc = _core(ws, "dataset", "import", str(tiny_source), "--name", "tiny", "--json")
    assert proc.returncode == 0, proc.stderr
    new_id = json.loads(proc.stdout)["id"]
    assert [d["id"] for d in datasets.list_datasets(ws)] == [new_id]
    assert [p.name for p in (ws / "datasets").iterdir()] == [new_id]  # the killed import's folder was swept


def test_killed_export_leaves_no_half_file_under_the_final_name(tiny, ws, capsys):
    run_dir = runs.create_run(_cfg(tiny, epochs=1), ws)
    training.run(runs.load_config(run_dir), run_dir)
    proc = _core(ws, "export", run_dir.name, "--format", "keras", fault="export")
    assert proc.returncode == KILLED
    exports = run_dir / "exports"
    assert not (exports / "model.keras").exists() and list(exports.glob(".model.keras.*.tmp"))
    code, out, err = _cli(ws, capsys, "export", run_dir.name, "--format", "keras", "--json")
    assert code == 0, err
    assert (exports / "model.keras").read_bytes() == (run_dir / "model.keras").read_bytes()
    assert [p.name for p in exports.iterdir()] == ["model.keras"]  # the killed export's file was swept


def test_a_full_disk_stops_with_a_sentence_and_keeps_the_last_good_checkpoint(tiny, ws, capsys, monkeypatch):
    import tensorflow as tf

    run_dir = runs.create_run(_cfg(tiny), ws)
    write, calls = tf.train.Checkpoint.write, []

    def full_on_third(self, file_prefix, *args, **kwargs):
        calls.append(file_prefix)
        if len(calls) < 3:
            return write(self, file_prefix, *args, **kwargs)
        with open(f"{file_prefix}.data-00000-of-00001", "wb") as f:
            f.write(b"\0" * 100)  # what fitted before the disk was full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tf.train.Checkpoint, "write", full_on_third)
    with pytest.raises(TrainingFailed, match="is full, so training stopped; the last good checkpoint was kept"):
        training.run(runs.load_config(run_dir), run_dir)
    monkeypatch.undo()
    status = runs.read_status(run_dir)
    assert status["state"] == "interrupted" and "Free some space" in status["message"]
    folder = run_dir / "checkpoints"
    assert {p.name.split(".")[0] for p in folder.glob("last-*")} == {runs.checkpoint_files(folder / "last").name}
    _intact(run_dir)
    code, _, err = _cli(ws, capsys, "resume", run_dir.name)
    assert code == 0, err
    _finished_and_complete(ws, capsys, run_dir, tiny)


def test_a_run_being_trained_cannot_be_resumed_a_second_time(tiny, ws, capsys):
    run_dir = runs.create_run(_cfg(tiny), ws)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from core.store import runs; "
         "runs.claim(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()", str(run_dir)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        runs.update_status(run_dir, "running", pid=holder.pid, pid_started=runs.start_time(holder.pid))
        code, _, err = _cli(ws, capsys, "resume", run_dir.name)
        assert code == 2 and f"is being trained right now by another process (pid {holder.pid})" in err
        # Even a status that says interrupted does not let a second process in while the lock is held.
        runs.update_status(run_dir, "interrupted")
        with pytest.raises(RunStateError, match="being trained right now"):
            training.run(runs.load_config(run_dir), run_dir, resume=True)
        assert runs.read_status(run_dir)["state"] == "interrupted"  # the refused process wrote nothing
        runs.update_status(run_dir, "running", created=0)
        assert runs.reconcile(ws) == []  # its process is alive: not interrupted
    finally:
        holder.kill()
        holder.wait()
    assert runs.lock_holder(run_dir) is None  # the system released the lock with the process
    assert runs.reconcile(ws) == [run_dir.name]
    runs.check_resumable(run_dir)  # no longer refused
