"""Compare: the run table, curves and trade-off charts of selected runs, the from-scratch flag, re-run and delete."""

import json

import pandas as pd
import pytest

from core.errors import QuotaExceeded
from core.service import jobs
from core.store import runs
from tests.pages.conftest import EVAL, app_test, assert_clean, plotly_charts


def _epochs(*val_accuracy: float) -> list[dict]:
    return [{"type": "epoch_end", "phase": "head", "epoch": i, "epochs": len(val_accuracy),
             "metrics": {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": v}, "seconds": 1.0}
            for i, v in enumerate(val_accuracy, start=1)]


def _select(at, *rows: int) -> None:
    """Tick table rows, as a click on their boxes would (the table's key starts at version 0)."""
    at.session_state["compare.table.0"] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
    at.run()


def test_empty_workspace_shows_guidance(ws):
    at = app_test("compare").run()
    assert_clean(at)
    assert "No runs yet" in at.info[0].value


def test_table_lists_both_runs_with_their_figures(ws, tiny_dataset, make_run):
    done = make_run("done", dataset_id=tiny_dataset["id"], backbone="efficientnet_b0", image_size=224,
                    strategy="fine_tune", epochs=6, fine_tune_epochs=4, events=_epochs(0.6, 0.85, 0.8))
    (done / "eval.json").write_text(json.dumps({**EVAL, "roc_auc": 0.93, "ms_per_image": 4.25}))
    failed = make_run("failed", dataset_id="gone-0123abcd", backbone="small_cnn", weights="none",
                      strategy="from_scratch", epochs=30)
    at = app_test("compare").run()
    assert_clean(at)
    rows = {row["run"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert list(rows) == [failed.name, done.name]  # newest first
    row = rows[done.name]
    assert (row["state"], row["dataset"], row["backbone"], row["strategy"]) == (
        "finished", "tiny", "EfficientNet B0", "Fine-tuning")
    assert (row["epochs"], row["training time (s)"], row["validation accuracy"], row["test accuracy"]) == pytest.approx(
        (3, 12.5, 85.0, 90.0))  # percentages
    assert (round(row["F1"], 2), row["AUC"], row["ms/image"]) == (89.9, 0.93, 4.25)
    assert row["file (MB)"] == round((done / "model.keras").stat().st_size / 2**20, 3)
    assert pd.isna(row["parameters"]) and pd.isna(row["size (MB)"])  # the fake model file has no weights to count
    row = rows[failed.name]
    assert (row["state"], row["dataset"], row["backbone"], row["epochs"]) == (
        "failed", "gone-0123abcd", "Small CNN (no pretraining)", 30)
    assert pd.isna(row["test accuracy"])  # not tested
    titles = [c.proto.spec for c in plotly_charts(at)]
    assert any("Accuracy against training time" in t for t in titles) and any("model size" in t for t in titles)


def test_selected_runs_get_overlaid_curves(ws, make_run):
    make_run("done", events=_epochs(0.5, 0.7))
    make_run("done", events=_epochs(0.4, 0.6, 0.9))
    make_run("done", events=_epochs(0.3))
    at = app_test("compare").run()
    curves = json.loads(plotly_charts(at)[0].proto.spec)
    assert len(curves["data"]) == 3  # nothing selected: the newest runs
    _select(at, 0, 2)
    assert_clean(at)
    curves = json.loads(plotly_charts(at)[0].proto.spec)
    assert [t["y"] for t in curves["data"]] == [[0.3], [0.5, 0.7]]
    at.selectbox(key="compare.metric").set_value("val_loss").run()
    assert json.loads(plotly_charts(at)[0].proto.spec)["layout"]["yaxis"]["title"]["text"] == "validation loss"


def test_negative_transfer_is_flagged_with_the_baseline_beside_its_run(ws, make_run):
    base = make_run("done", weights="none", strategy="from_scratch", events=_epochs(0.8))
    make_run("done", events=_epochs(0.9))
    transfer = make_run("done", status={"baseline_run": base.name, "transfer_hurt": True}, events=_epochs(0.7))
    runs.update_status(base, baseline_of=transfer.name)
    at = app_test("compare").run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["run"]) [:2] == [transfer.name, base.name]
    assert table["vs. from scratch"][0] == "⚠ transfer hurt (-10.0 points)"
    assert table["vs. from scratch"][1].startswith("baseline of")
    assert "Negative transfer" in at.warning[0].value and "70% against 80%" in at.warning[0].value


def test_delete_needs_a_confirmation_and_clears_the_selection(ws, make_run):
    keep = make_run("done")
    gone = make_run("done")
    at = app_test("compare").run()
    assert any("Select runs" in c.value for c in at.caption) and not at.button
    _select(at, 0)
    assert at.button(key="compare.delete").disabled
    at.checkbox(key="compare.confirm.0").check().run()
    at.button(key="compare.delete").click().run()
    assert_clean(at)
    assert not gone.exists() and keep.exists()
    assert "Deleted 1 run" in at.success[0].value
    assert list(at.dataframe[0].value["run"]) == [keep.name]
    assert not at.checkbox and any("Select runs" in c.value for c in at.caption)  # a fresh, empty selection


def test_running_runs_cannot_be_deleted(ws, make_run):
    make_run("running", status={"pid": 0, "created": 9e12})
    at = app_test("compare").run()
    _select(at, 0)
    at.checkbox(key="compare.confirm.0").check().run()
    assert at.button(key="compare.delete").disabled
    assert any("cannot be deleted" in c.value for c in at.caption)


def test_rerun_submits_the_stored_config(ws, make_run, monkeypatch):
    run_dir = make_run("done", backbone="mobilenet_v3_small", epochs=7)
    submitted = []

    def fake_submit(config, workspace):
        submitted.append((config, workspace))
        return "20260202-000000-abcdefabcdef"

    monkeypatch.setattr(jobs, "submit", fake_submit)
    at = app_test("compare").run()
    _select(at, 0)
    at.button(key="compare.rerun").click().run()
    assert_clean(at)
    assert submitted == [(runs.load_config(run_dir), ws)]
    assert "20260202-000000-abcdefabcdef" in at.success[0].value
    assert at.session_state["run_id"] == "20260202-000000-abcdefabcdef"


def test_an_unexpected_error_is_a_friendly_sentence_and_a_logged_traceback(ws, monkeypatch, caplog):
    def broken(ws):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runs, "list_runs", broken)
    at = app_test("compare").run()
    assert not at.exception
    assert "Something went wrong" in at.error[0].value
    assert "disk on fire" not in at.error[0].value
    assert any("disk on fire" in (r.exc_text or "") for r in caplog.records)


def test_rerun_says_which_runs_started_when_a_cap_refuses_the_rest(ws, make_run, monkeypatch):

    make_run("done")
    make_run("done")
    started = []

    def capped_submit(config, workspace):
        if started:
            raise QuotaExceeded("You already have 1 run(s) waiting or training, the most this shared server allows.")
        started.append("20260202-000000-abcdefabcdef")
        return started[-1]

    monkeypatch.setattr(jobs, "submit", capped_submit)
    at = app_test("compare").run()
    _select(at, 0, 1)
    at.button(key="compare.rerun").click().run()
    assert not at.exception
    assert "Started 1 new run(s): 20260202-000000-abcdefabcdef." in at.success[0].value
    assert at.error[0].value.startswith("1 of the 2 runs did not start. You already have 1 run(s)")
