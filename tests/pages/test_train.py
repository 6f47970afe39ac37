"""Train: guidance without data, refusals as sentences, and the live view of a (fake) running job."""

import json
import os
import time

import pytest

from core.service import jobs, studies
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs
from tests.pages.conftest import app_test, assert_clean, plotly_charts

EVENTS = [
    {"type": "notice", "message": "Training MobileNet V2 (width 1.0) instead, whose ImageNet weights are cached."},
    {"type": "phase_start", "phase": "head", "index": 1, "phases": 1, "epochs": 4, "steps": 5, "trainable_params": 2562},
    {"type": "batch_end", "phase": "head", "epoch": 1, "batch": 5, "steps": 5, "loss": 0.9, "accuracy": 0.6},
    {"type": "epoch_end", "phase": "head", "epoch": 1, "epochs": 4, "seconds": 1.5,
     "metrics": {"loss": 0.9, "accuracy": 0.6, "val_loss": 0.8, "val_accuracy": 0.7}},
    {"type": "batch_end", "phase": "head", "epoch": 2, "batch": 2, "steps": 5, "loss": 0.7, "accuracy": 0.7},
]


def running_run(make_run, dataset_id):
    # The test process itself stands in for the job's process, so the run counts as alive.
    return make_run("running", dataset_id=dataset_id, events=EVENTS, epochs=4,
                    status={"pid": os.getpid(), "created": time.time(), "phase": "head"})


def test_no_dataset_shows_guidance(ws):
    at = app_test("train").run()
    assert_clean(at)
    assert "no dataset" in at.info[0].value.lower()
    assert not [b for b in at.button if b.key == "train.start"]


def test_quick_preset_is_used_without_model_settings(ws, tiny):
    at = app_test("train").run()
    assert_clean(at)
    assert any("Quick preset" in c.value for c in at.caption)
    assert not at.button(key="train.start").disabled


def test_a_dataset_too_small_to_train_is_refused_in_a_sentence_before_the_click(ws, tiny_dataset):
    # Said beside a switched-off button: a click that only answered below it went unseen (issue 24's walk).
    at = app_test("train").run()
    assert_clean(at)
    assert any("add at least 10 images" in w.value and "Data page" in w.value for w in at.warning)
    assert at.button(key="train.start").disabled  # a browser cannot press it (AppTest refuses too)


def test_reattaches_to_a_running_job_from_the_url(ws, tiny_dataset, make_run):
    run_dir = running_run(make_run, tiny_dataset["id"])
    at = app_test("train")
    at.query_params["run"] = run_dir.name  # a reload: new session, run id only in the URL
    at.run()
    assert_clean(at)
    assert at.session_state["run_id"] == run_dir.name
    assert at.session_state["train.poll"] is not None  # the fragment polls while the job runs
    overall, epoch = at.progress
    assert overall.value == 25  # percent: 1 of 4 epochs
    assert epoch.value == 40  # batch 2 of 5
    assert any("Phase 1 of 1" in m.value for m in at.markdown)
    assert any("instead" in i.value for i in at.info)  # the backbone fallback notice
    assert len(plotly_charts(at)) == 2  # loss and accuracy curves
    assert "epoch   1" in at.code[0].value
    assert at.button(key="train.start").disabled  # one run at a time

    at.button(key="train.cancel").click().run()
    assert runs.cancel_requested(run_dir)
    assert any("Cancelling" in c.value for c in at.caption)


def test_finished_job_stops_polling_and_shows_test_accuracy(ws, tiny, make_run):
    run_dir = running_run(make_run, tiny["id"])
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    at.run()
    assert at.session_state["train.poll"] is not None

    status = json.loads((run_dir / "status.json").read_text())
    status.update(state="done", test_accuracy=0.875, train_seconds=42.0)
    (run_dir / "status.json").write_text(json.dumps(status))
    at.run()
    assert_clean(at)
    assert at.session_state["train.poll"] is None
    assert not at.progress
    assert "87.5%" in at.success[0].value
    assert not at.button(key="train.start").disabled


def test_failed_job_shows_its_message(ws, tiny_dataset, make_run):
    run_dir = make_run("failed", dataset_id=tiny_dataset["id"],
                       status={"message": "The loss became NaN (not a number); lower the learning rate and try again."})
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    at.run()
    assert not at.exception
    assert "lower the learning rate" in at.error[0].value


def test_an_unknown_run_id_in_the_url_is_dropped(ws, tiny_dataset):
    at = app_test("train")
    at.query_params["run"] = "../../etc"
    at.run()
    assert_clean(at)
    assert "run_id" not in at.session_state
    assert "run" not in at.query_params


def test_a_waiting_job_says_how_many_runs_are_ahead(ws, tiny_dataset, make_run):
    busy = make_run("running", dataset_id=tiny_dataset["id"],
                    status={"pid": os.getpid(), "pid_started": runs.start_time(os.getpid()), "created": time.time() - 60})
    jobs._enqueue(busy, jobs.queue_dir(ws))
    run_dir = make_run("queued", dataset_id=tiny_dataset["id"],
                       status={"pid": os.getpid(), "created": time.time()})
    jobs._enqueue(run_dir, jobs.queue_dir(ws))  # what jobs.submit does before the process starts
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    at.run()
    assert_clean(at)
    assert any("Waiting for 1 other training run to finish first" in i.value for i in at.info)


def test_a_run_alone_in_line_is_getting_ready_not_waiting(ws, tiny_dataset, make_run):
    run_dir = make_run("queued", dataset_id=tiny_dataset["id"],
                       status={"pid": os.getpid(), "created": time.time()})
    jobs._enqueue(run_dir, jobs.queue_dir(ws))
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    at.run()
    assert_clean(at)
    infos = " ".join(i.value for i in at.info)
    assert "Getting ready" in infos and "Waiting" not in infos and "in line" not in infos


def test_an_interrupted_run_offers_to_resume(ws, tiny_dataset, make_run, monkeypatch):

    run_dir = make_run("interrupted", dataset_id=tiny_dataset["id"], events=EVENTS[:4],
                       status={"message": "The training process ended unexpectedly."})
    resumed = []
    monkeypatch.setattr(jobs, "resume", lambda run_id, ws: resumed.append(run_id))
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    at.run()
    assert_clean(at)
    at.button(key="train.resume").click().run()
    assert resumed == [run_dir.name]


def test_the_transfer_verdict_and_the_training_method_are_shown(ws, tiny_dataset, make_run):
    events = EVENTS[:2] + [{"type": "features", "phase": "head", "images": 30, "computed": 10, "views": 0, "seconds": 2.5}]
    base = make_run("done", dataset_id=tiny_dataset["id"], status={"test_accuracy": 0.98})
    run_dir = make_run("done", dataset_id=tiny_dataset["id"], events=events, augment={"flip": False, "rotate": False},
                       status={"transfer_hurt": True, "val_accuracy": 0.6, "baseline_val_accuracy": 0.7,
                               "baseline_run": base.name})
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    next_run = RunConfig(dataset_id=tiny_dataset["id"], augment=AugmentConfig(flip=False, rotate=False))
    at.session_state["run_config"] = next_run.to_json()
    at.run()
    assert_clean(at)
    # Never green: 90.0% test accuracy is 8 points below the from-scratch baseline's 98.0%.
    assert not at.success
    assert any("90.0% against 98.0% for the same network trained from scratch" in w.value and "Try fine-tuning" in w.value
               for w in at.warning)
    assert any("computed once" in c.value and "20 came ready" in c.value for c in at.caption)
    assert any("goes through the backbone once" in c.value for c in at.caption)


def test_a_guessing_level_result_is_never_green_and_says_what_to_try(ws, tiny_dataset, make_run):
    run_dir = make_run("done", dataset_id=tiny_dataset["id"], status={"test_accuracy": 0.5})  # 2 classes
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    at.run()
    assert not at.success
    assert "about what guessing gets with 2 classes (50.0%)" in at.error[0].value
    assert "Try a pretrained backbone" in at.error[0].value


@pytest.mark.parametrize("field, back", [("baseline_run", "baseline_of"), ("source_only_run", "source_only_of"),
                                         ("student_alone_run", "student_alone_of")])
def test_the_start_button_frees_itself_when_a_companion_run_finishes(ws, tiny, make_run, field, back):
    # The main run is done; its companion (from scratch, without adaptation, the student alone: trained by the same
    # job right after it) still trains. Issue 28, item 2: the page stayed "still training" after both had finished.
    alive = {"pid": os.getpid(), "pid_started": runs.start_time(os.getpid()), "created": time.time()}
    companion = make_run("running", dataset_id=tiny["id"], status={**alive, back: "x"})
    run_dir = make_run("done", dataset_id=tiny["id"], status={field: companion.name})
    at = app_test("train")
    at.session_state["run_id"] = run_dir.name
    at.run()
    assert_clean(at)
    assert at.button(key="train.start").disabled
    assert at.session_state["train.poll"] is not None  # the page keeps polling for the companion
    assert any(f"Run {companion.name} is training now" in i.value for i in at.info)

    status = json.loads((companion / "status.json").read_text())
    status.update(state="done", test_accuracy=0.6)
    (companion / "status.json").write_text(json.dumps(status))
    at.run()
    assert not at.button(key="train.start").disabled
    assert at.session_state["train.poll"] is None


def test_a_running_search_holds_start_and_the_page_frees_it_when_the_search_ends(ws, tiny):
    # No run chosen on this page, but a search trains: Start waits, and the page polls so it frees itself.
    base = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32)
    study_id = studies.create(base.validate(), ws, trials=2, search=["lr"])
    status = studies.study_path(study_id, ws) / "status.json"
    status.write_text(json.dumps({"state": "running", "created": time.time(), "pid": os.getpid(),
                                  "pid_started": runs.start_time(os.getpid())}))  # this process plays the job
    at = app_test("train").run()
    assert_clean(at)
    assert at.button(key="train.start").disabled
    assert any(f"The search `{study_id}` is still training" in c.value for c in at.caption)
    assert at.session_state["train.poll"] is not None

    status.write_text(json.dumps({**json.loads(status.read_text()), "state": "done", "finished": time.time()}))
    at.run()
    assert_clean(at)
    assert not at.button(key="train.start").disabled
    assert not any("still training" in c.value for c in at.caption)
    assert at.session_state["train.poll"] is None
