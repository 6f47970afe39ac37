"""Search: guidance, the learning-rate finder (its result faked), refusals, and a (fake) finished study."""

import json
import os
import time

import numpy as np
import optuna
import pytest

from core.service import jobs, studies
from core.spec.config import RunConfig
from core.store import runs
from tests.pages.conftest import app_test, assert_clean, plotly_charts


def _curve() -> dict:
    rates = list(1e-7 * (1e7) ** (np.arange(60) / 99))
    smoothed = [2.0] * 20 + list(np.linspace(1.9, 0.3, 30)) + list(np.linspace(0.5, 9.0, 10))
    return {"rates": rates, "losses": smoothed, "smoothed": smoothed, "suggestion": rates[35], "suggestion_index": 35,
            "suggestion_loss": smoothed[35], "stopped_early": True, "on_features": True, "batches": 60,
            "start": 1e-7, "end": 1.0, "seconds": 3.0}


def test_no_dataset_shows_guidance(ws):
    at = app_test("search").run()
    assert_clean(at)
    assert "no dataset" in at.info[0].value.lower()


def test_lr_finder_chart_and_use_it(ws, tiny, monkeypatch):
    """The page submits the finder as a job (the queue and the caps count it) and polls it; never runs it itself."""
    seen = {"polls": 0}

    def submit(config, workspace):
        seen["config"] = config
        return "lrfind-0123456789ab"

    def state(job_id, workspace):
        seen["polls"] += 1
        if seen["polls"] == 1:
            return {"state": "queued", "queue_position": 1, "message": None}
        return {"state": "done", "queue_position": None, "message": None, "result": _curve()}

    monkeypatch.setattr(jobs, "submit_lr_find", submit)
    monkeypatch.setattr(jobs, "lr_find_state", state)
    at = app_test("search").run()
    assert_clean(at)
    at.button(key="search.lr.find").click().run()
    assert_clean(at)
    assert seen["config"].dataset_id == tiny["id"]
    assert any("number 1 in line" in i.value for i in at.info)
    at.run()  # the next poll: the job is done
    assert_clean(at)
    chart = plotly_charts(at)[0]
    assert '"type":"log"' in chart.proto.spec.replace(" ", "")
    assert any("Suggested learning rate" in m.value for m in at.markdown)
    at.button(key="search.lr.use").click().run()
    assert_clean(at)
    assert RunConfig.from_json(at.session_state["run_config"]).learning_rate == pytest.approx(_curve()["suggestion"])
    assert any("learning rate is now" in s.value for s in at.success)


def test_an_empty_space_is_refused_in_a_sentence(ws, tiny):
    at = app_test("search").run()
    for name in studies.HEAD_SEARCH:
        at.checkbox(key=f"search.p.{name}").uncheck()
    at.button(key="search.start").click().run()
    assert not at.exception
    assert "search space is empty" in at.error[0].value
    assert not (ws / "studies").exists()


pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() here plays the worker


def _finished_study(ws, tiny, make_run, accuracies=(0.80, 0.81, 0.82)) -> tuple[str, list]:
    base = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32).validate()
    study_id = studies.create(base, ws, trials=3, search=["lr", "dropout"])
    record = studies.read_record(study_id, ws)
    study = optuna.load_study(study_name=study_id, storage=studies.open_storage(record["storage"]))
    params = {p.name: p for p in studies.params_of(record)}
    dists = {"lr": optuna.distributions.FloatDistribution(params["lr"].low, params["lr"].high, log=True),
             "dropout": optuna.distributions.FloatDistribution(params["dropout"].low, params["dropout"].high)}
    made = []
    for i, (lr, _dropout, value, state) in enumerate([(1e-3, 0.2, 0.7, "COMPLETE"), (3e-3, 0.4, 0.5, "COMPLETE"),
                                                    (0.09, 0.1, None, "PRUNED")]):
        run_dir = make_run(dataset_id=tiny["id"], learning_rate=lr, status={"study": study_id, "trial": i})
        made.append(run_dir)
        trial = study.ask(dists)
        trial.set_user_attr("run_id", run_dir.name)
        trial.set_user_attr("val_accuracy", accuracies[i])
        trial.set_user_attr("worker", "machine-b:42" if i == 1 else "machine-a:7")
        if state == "PRUNED":
            trial.set_user_attr("pruned_epoch", 1)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study_id, made


def test_finished_study_table_figures_and_use_the_best(ws, tiny, make_run):
    study_id, made = _finished_study(ws, tiny, make_run)
    at = app_test("search")
    at.query_params["study"] = study_id  # a reload: the study id only in the URL
    at.run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["trial"]) == [0, 1, 2]
    assert "stopped early (looked hopeless) after epoch 1" in table["state"].iloc[2]
    # The page's words for the settings, not parameter names (issue 28, item 10).
    assert table["settings"].iloc[0].startswith("Learning rate 1.00e-03, ") and "dropout" not in table["settings"].iloc[0]
    # The picker names the dataset searched and carries no job state, which went stale (item 11).
    options = at.selectbox(key="search.pick").options
    assert options[0].startswith(f"{study_id} · on tiny · searching ") and "done" not in options[0]
    assert not any("higher validation accuracy" in c.value for c in at.caption)
    assert table["run"].iloc[1] == made[1].name
    assert list(table["ran on"]) == ["machine-a:7", "machine-b:42", "machine-a:7"]  # which worker ran each trial
    assert any("Best so far: trial 1" in m.value for m in at.markdown)
    assert len(plotly_charts(at)) >= 3  # history, parallel coordinates, slice (importances with enough trials)
    assert at.session_state["search.poll"] is None  # nothing to poll: the study is not running
    at.button(key="search.use_best").click().run()
    assert_clean(at)
    assert RunConfig.from_json(at.session_state["run_config"]) == runs.load_config(made[1])


def test_running_study_polls_and_cancels(ws, tiny, make_run):
    study_id, _ = _finished_study(ws, tiny, make_run)
    study_dir = studies.study_path(study_id, ws)
    (study_dir / "status.json").write_text(
        f'{{"state": "running", "created": {time.time()}, "pid": {os.getpid()}}}')  # this process plays the job
    at = app_test("search")
    at.session_state["search.study"] = study_id
    at.run()
    assert_clean(at)
    assert at.session_state["search.poll"] is not None
    assert at.button(key="search.start").disabled  # one job at a time
    at.button(key="search.cancel").click().run()
    assert runs.cancel_requested(study_dir)


def test_a_best_trial_below_another_in_accuracy_says_why(ws, tiny, make_run):
    # Issue 28, item 11: the best (lowest loss) trial at 70 % sat above one at 75 % without a word.
    study_id, _ = _finished_study(ws, tiny, make_run, accuracies=(0.75, 0.70, 0.6))
    at = app_test("search")
    at.session_state["search.study"] = study_id
    at.run()
    assert_clean(at)
    assert any("Best so far: trial 1" in m.value for m in at.markdown)
    assert any("Trial 0 reached a higher validation accuracy (75.0%) but a higher validation loss (0.7000)" in c.value
               for c in at.caption)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in plotly_charts(at)]
    assert "How the best validation loss improved, trial by trial" in titles
    assert not any("Optimization History" in t for t in titles)


def test_the_search_list_follows_what_trains_and_frees_start(ws, tiny, make_run):
    # Issue 28, items 2 and 11: the list went stale and Start stayed greyed. While anything trains (here a run, not
    # the search shown) the list polls; once it ends, Start is free and a search added meanwhile is listed.
    study_id, _ = _finished_study(ws, tiny, make_run)
    training = make_run("running", dataset_id=tiny["id"], status={"pid": os.getpid(), "created": time.time()})
    at = app_test("search")
    at.session_state["search.study"] = study_id
    at.run()
    assert_clean(at)
    assert at.session_state["search.poll"] is not None
    assert at.button(key="search.start").disabled
    assert any(f"Run `{training.name}` is still training" in c.value for c in at.caption)
    assert len(at.selectbox(key="search.pick").options) == 1

    base = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32).validate()
    second = studies.create(base, ws, trials=2, search=["dropout"])  # say, started from the command line
    status = json.loads((training / "status.json").read_text())
    (training / "status.json").write_text(json.dumps({**status, "state": "done", "test_accuracy": 0.8}))
    at.run()
    assert_clean(at)
    assert at.session_state["search.poll"] is None
    assert not at.button(key="search.start").disabled
    options = at.selectbox(key="search.pick").options
    assert len(options) == 2 and any(o.startswith(second) for o in options)
    assert at.selectbox(key="search.pick").value == study_id  # the search shown stays the one chosen
