import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import DatasetError, StudyError
from core.service import studies, tuner
from core.spec.config import RANGES, AugmentConfig, RunConfig
from core.store import runs

ROOT = Path(__file__).resolve().parents[3]
NO_AUG = AugmentConfig(flip=False, rotate=False)


def _config(dataset_id: str, **changes) -> RunConfig:
    base = RunConfig(dataset_id=dataset_id, backbone="mobilenet_v1_0.25", weights="none", image_size=32, epochs=1,
                     batch_size=8, patience=0, augment=NO_AUG, val_fraction=0.2, test_fraction=0.2)
    return base.with_changes(**changes).validate()


def _lookup(config, dotted):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_space_never_proposes_a_value_validate_refuses():
    import optuna

    for param in studies.CATALOGUE.values():
        if param.field in RANGES:
            low, high = RANGES[param.field]
            values = param.choices if param.kind == "choice" else (param.low, param.high)
            assert all(low <= v <= high for v in values), param.name
    base = _config("d-0123abcd", strategy="fine_tune", weights="imagenet", fine_tune_epochs=1)
    params = studies.space(base, list(studies.CATALOGUE))
    assert {p.name for p in params} == set(studies.CATALOGUE)  # fine-tuning opens the backbone: all apply
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(300):
        trial = study.ask()
        values = studies.suggest(trial, params)
        config = studies.apply(base, values)  # validate() inside: raises on a refused value
        for p in params:
            if p.name != "augment":
                assert _lookup(config, p.field) == values[p.name]
        study.tell(trial, 0.0)


def test_space_leaves_out_what_the_strategy_ignores_and_refuses_an_empty_one(ws, tiny):
    frozen = _config(tiny["id"])
    names = [p.name for p in studies.space(frozen, list(studies.CATALOGUE))]
    assert "fine_tune_lr" not in names and "fine_tune_layers" not in names and "lr" in names
    with pytest.raises(StudyError, match="search space is empty"):
        studies.create(frozen, ws, trials=2, search=["fine_tune_lr"])
    with pytest.raises(StudyError, match="not a setting"):
        studies.create(frozen, ws, trials=2, search=["colour"])
    with pytest.raises(StudyError, match="at least one trial"):
        studies.create(frozen, ws, trials=0)
    with pytest.raises(StudyError, match="positive number of minutes"):
        studies.create(frozen, ws, trials=None, minutes=0)
    with pytest.raises(StudyError, match="cannot be opened"):
        studies.create(frozen, ws, trials=2, storage="nosuch://host/db")
    with pytest.raises(StudyError, match="cannot be opened"):
        studies.create(frozen, ws, trials=2, storage=f"sqlite:///{ws}/missing/folder/optuna.db")
    with pytest.raises(StudyError, match=r"'postgresql://bob:\*\*\*@127.0.0.1:1/db' cannot be opened") as refused:
        studies.create(frozen, ws, trials=2, storage="postgresql://bob:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(refused.value)  # a password in the URL is never echoed
    assert not (ws / "studies").exists()  # nothing written
    assert not (ws / "missing").exists()


def test_join_refuses_a_config_of_another_dataset(ws, tiny):
    study_id = studies.create(_config(tiny["id"]), ws, trials=1)
    with pytest.raises(StudyError, match="searches dataset"):
        studies.join(study_id, ws, _config("d-0123abcd"))
    with pytest.raises(StudyError, match="no study"):
        studies.join("s-20200101-000000-abcdef", ws)
    assert [s["id"] for s in studies.list_studies(ws)] == [study_id]


def test_trials_are_complete_runs_and_a_diverging_trial_is_pruned(ws, tiny, monkeypatch):
    import optuna

    monkeypatch.setattr(studies, "PRUNER_STARTUP_TRIALS", 1)
    base = _config(tiny["id"], epochs=2)
    study_id = studies.create(base, ws, trials=2, search=["lr"])
    record = studies.read_record(study_id, ws)
    study = optuna.load_study(study_name=study_id, storage=studies.open_storage(record["storage"]))
    study.enqueue_trial({"lr": 1.0})  # outside the search's span, inside what validate() allows: it diverges
    with pytest.warns(UserWarning, match="out of range"):
        result = tuner.work(study_id, ws)
    assert result["counts"]["complete"] == 1 and result["counts"]["pruned"] == 1
    info = studies.show(study_id, ws)
    first, second = info["trials"]
    assert first["note"] == "the current settings" and first["params"] == {"lr": base.learning_rate}
    run_dir = runs.run_path(first["run_id"], ws)
    for name in ("config.json", "status.json", "events.jsonl", "model.keras", "eval.json", "split.json"):
        assert (run_dir / name).is_file(), name
    assert runs.load_config(run_dir) == studies.apply(base, {"lr": base.learning_rate})
    status = runs.read_status(run_dir)
    assert status["study"] == study_id and status["trial"] == 0 and status["state"] == "done"
    assert first["value"] == pytest.approx(min(e["metrics"]["val_loss"] for e in runs.read_events(run_dir)
                                               if e["type"] == "epoch_end"))
    assert second["state"] == "pruned" and second["pruned_epoch"] == 1
    pruned = runs.read_status(runs.run_path(second["run_id"], ws))
    assert pruned["pruned"] is True and pruned["pruned_epoch"] == 1 and pruned["trial"] == 1
    assert pruned["message"].startswith("Pruned by the search after epoch 1")
    epochs = [e for e in runs.read_events(runs.run_path(second["run_id"], ws)) if e["type"] == "epoch_end"]
    assert len(epochs) == 1  # stopped after the epoch it was pruned at
    assert info["best"]["number"] == 0
    assert studies.best_config(study_id, ws) == runs.load_config(run_dir)
    assert set(studies.figures(study_id, ws)) >= {"history", "slice"}


def _worker(ws: Path, study_id: str, *extra: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "TL_WORKSPACE": str(ws), "TL_STUDY_HEARTBEAT": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "core", "tune", "--study", study_id, "--join", "--json", "--quiet",
                             *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _trials(ws: Path, study_id: str) -> list[dict]:
    return studies.show(study_id, ws)["trials"]


def test_study_resumes_after_sigkill_without_repeating_finished_trials(ws, tiny, monkeypatch):
    monkeypatch.setenv("TL_STUDY_HEARTBEAT", "1")
    study_id = studies.create(_config(tiny["id"]), ws, trials=2, search=["lr", "dropout"])
    # SIGKILLed while its second trial saves its model: after one finished trial, during the next (a trial that
    # trains its head alone takes a second or two, too short to catch from outside).
    proc = _worker(ws, study_id, env_extra={"TL_FAULT_POINT": "model_save:2"})
    assert proc.wait(timeout=240) == -signal.SIGKILL
    before = {r["number"]: r for r in _trials(ws, study_id) if r["state"] == "complete"}
    killed = next(r for r in _trials(ws, study_id) if r["state"] == "running")
    result = tuner.work(study_id, ws)  # waits until the killed trial's heartbeat is stale (3 x 1 s), then retries it
    rows = _trials(ws, study_id)
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 2
    for number, row in before.items():
        assert rows[number]["state"] == "complete" and rows[number]["run_id"] == row["run_id"]  # not run again
    assert not set(before) & set(result["trials_here"])
    assert rows[killed["number"]]["state"] == "failed"
    retried = [r for r in rows if r["number"] > killed["number"] and r["params"] == killed["params"]]
    assert retried and retried[0]["state"] in ("complete", "pruned")  # its settings were tried again
    run_ids = [r["run_id"] for r in rows if r["state"] in ("complete", "pruned")]
    assert len(set(run_ids)) == len(run_ids) == 2


def test_two_local_workers_share_one_study(ws, tiny):
    study_id = studies.create(_config(tiny["id"]), ws, trials=3, search=["lr", "dropout"])
    procs = [_worker(ws, study_id), _worker(ws, study_id)]
    outs = [json.loads(p.communicate(timeout=400)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    mine = [set(o["trials_here"]) for o in outs]
    assert not mine[0] & mine[1]  # no trial run twice
    assert len(mine[0]) + len(mine[1]) == 3
    rows = _trials(ws, study_id)
    assert len(rows) == 3 and all(r["state"] in ("complete", "pruned") for r in rows)
    run_ids = {r["run_id"] for r in rows}
    assert len(run_ids) == 3
    trained = [r for r in runs.list_runs(ws) if r.status.get("study") == study_id]
    assert {r.id for r in trained} == run_ids


def test_cli_tune_and_study_show(ws, tiny, tmp_path, capsys):
    from core import cli

    cfg = tmp_path / "config.json"
    cfg.write_text(_config(tiny["id"]).to_json())
    assert cli.main(["tune", str(cfg), "--trials", "0", "--json"]) == 2
    assert "at least one trial" in capsys.readouterr().err
    assert cli.main(["tune", str(cfg), "--trials", "1", "--search", "dropout", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["complete"] == 1 and out["best"]["params"] == {"dropout": 0.2}
    assert cli.main(["study", "show", out["id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [t["run_id"] for t in shown["trials"]] == [out["best"]["run_id"]]
    assert cli.main(["study", "list"]) == 0 and out["id"] in capsys.readouterr().out
    with pytest.raises(DatasetError):
        studies.create(_config("d-0123abcd"), ws, trials=1)


def test_a_study_runs_as_a_background_job_and_cancels(ws, tiny):
    study_id = studies.submit(_config(tiny["id"]), ws, trials=5, search=["dropout"])
    assert studies.job_state(study_id, ws)["state"] in ("queued", "running")
    with pytest.raises(StudyError, match="already running"):
        studies.start_job(study_id, ws)
    studies.cancel(study_id, ws)
    deadline = time.monotonic() + 120
    while studies.job_state(study_id, ws)["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
    job = studies.job_state(study_id, ws)
    assert job["state"] == "cancelled", job
    assert studies.show(study_id, ws)["counts"]["complete"] < 5
    assert [s["job"] for s in studies.list_studies(ws)] == ["cancelled"]
