"""Export page, "Make it smaller": the sparsity slider starts a pruning job; a measured child shows its report."""

import json

from core.service import jobs
from core.ship import pruning
from core.store import runs
from tests.pages.conftest import app_test, assert_clean, plotly_charts


def _report(parent: str, child: str) -> dict:
    def files(scale: float) -> dict:
        return {f: {"file": name, "bytes": int(b * (1 if f == "keras" else 1)), "gzip_bytes": int(b * scale),
                    "accuracy": 0.88, "ms_per_image": 1.5, "agreement": 0.97}
                for f, name, b in (("keras", "model.keras", 4_000_000), ("tflite", "model_float32.tflite", 3_000_000),
                                   ("tflite-int8", "model_int8.tflite", 1_000_000))}

    child_files = files(0.4)
    parent_files = files(0.9)
    for f, row in child_files.items():
        row["gzip_vs_parent"] = round(row["gzip_bytes"] / parent_files[f]["gzip_bytes"], 4)
    return {
        "run": child, "parent": parent, "sparsity": 0.5, "epochs": 3, "sparsity_reached": 0.5,
        "kinds": {"Conv2D": {"prunable": True, "layers": 4, "weights": 1000, "zeros": 500, "sparsity": 0.5},
                  "DepthwiseConv2D": {"prunable": False, "layers": 2, "weights": 100, "zeros": 0, "sparsity": 0.0}},
        "not_prunable": "Depthwise convolutions are not prunable in TensorFlow Model Optimization.",
        "parameters": 2000, "nonzero_parameters": 1400, "overall_sparsity": 0.3, "parent_nonzero_parameters": 1900,
        "test_accuracy": 0.88, "parent_test_accuracy": 0.9, "change_points": -2.0, "ms_per_image": 1.2,
        "parent_ms_per_image": 1.3, "n": 10, "files": child_files, "parent_files": parent_files,
    }


def test_slider_starts_a_pruning_job(ws, make_run, monkeypatch):
    parent = make_run("done")
    spawned = []
    monkeypatch.setattr(jobs, "_spawn", lambda run_dir, resume, prune=False: spawned.append(prune))
    at = app_test("export").run()
    assert_clean(at)
    assert any("Pruning" in m.value for m in at.markdown)
    assert any(c.value.startswith("Use it when") for c in at.caption)
    at.slider(key="prune.sparsity").set_value(0.75).run()
    assert at.selectbox(key="prune.clusters").value == pruning.DEFAULT_CLUSTERS
    at.selectbox(key="prune.clusters").set_value(0).run()
    at.button(key="prune.start").click().run()
    assert_clean(at)
    child = pruning.children(parent)[0]
    assert spawned == [True]
    assert (child.status["pruned_from"], child.status["sparsity"], child.status["prune_epochs"],
            child.status["clusters"]) == (parent.name, 0.75, pruning.DEFAULT_EPOCHS, 0)
    assert at.button(key="prune.start").disabled  # one pruning of a run at a time


def test_measured_child_shows_its_report(ws, make_run):
    parent = make_run("done")
    child = make_run("done", status={"pruned_from": parent.name, "sparsity": 0.5, "prune_epochs": 3})
    (child / pruning.REPORT).write_text(json.dumps(_report(parent.name, child.name)))
    at = app_test("export").run()
    assert_clean(at)
    assert at.selectbox(key="export.run").value == child.name  # newest first: the child itself
    assert any(f"pruned from run {parent.name}" in i.value for i in at.info)
    at.selectbox(key="export.run").set_value(parent.name).run()
    assert_clean(at)
    table = at.dataframe[0].value  # the TFLite check table shows only once measured
    assert list(table["file"])[0] == "Keras model (model.keras)"
    assert list(table["share of before"]) == [round(0.4 / 0.9, 4)] * 3
    assert len(table.columns) == 6  # the last column fits (issue 28, item 12)
    kinds = at.dataframe[1].value
    assert list(kinds["pruned"]) == ["yes", "no (not prunable)"]
    assert [m.value for m in at.metric][:1] == ["88.0%"]
    assert plotly_charts(at)
    assert runs.read_status(child)["state"] == "done"


def test_a_pruning_that_lost_many_points_says_so_and_what_to_try(ws, make_run):
    # Issue 28, item 5: "46.7 % ↓ −26.7 points" used to stand without a word.
    parent = make_run("done", status={"test_accuracy": 0.95})  # two classes: guessing gets 50%
    make_run("done", status={"pruned_from": parent.name, "sparsity": 0.5, "prune_epochs": 3,
                             "test_accuracy": 0.70})
    at = app_test("export")
    at.session_state["export.run"] = parent.name
    at.run()
    assert not at.exception
    said = " ".join(w.value for w in at.warning)
    assert "70.0% against 95.0% for the same model before pruning (-25.0 points)" in said
    assert "lower sparsity" in said and not at.success
    assert not any("a point or so" in c.value for c in at.caption)
