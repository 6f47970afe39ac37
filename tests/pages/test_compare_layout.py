"""Compare, newcomer findings: test accuracy first and the key columns up front, words for metrics, named
single curves, unclipped point labels, and one size for one network whatever its optimizer state."""

import io
import json
import zipfile

import h5py
import numpy as np

from tests.pages.conftest import EVAL, app_test, assert_clean, plotly_charts
from tests.pages.test_compare import _epochs


def _keras_file(path, weights: int, optimizer: int) -> None:
    """A .keras zip whose weights file holds `weights` numbers, plus `optimizer` numbers of optimizer state."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=np.random.default_rng(0).random(weights, np.float32))
        if optimizer:
            h5.create_dataset("optimizer/vars/0", data=np.random.default_rng(1).random(optimizer, np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.weights.h5", buf.getvalue())


def test_key_columns_first_and_one_size_for_one_network(ws, make_run):
    frozen = make_run("done", events=_epochs(0.96))
    tuned = make_run("done", strategy="fine_tune", fine_tune_epochs=2, events=_epochs(0.91))
    _keras_file(frozen / "model.keras", 250_000, 0)
    _keras_file(tuned / "model.keras", 250_000, 400_000)  # Adam's two numbers for each trained weight
    for run, acc in ((frozen, 0.778), (tuned, 0.844)):
        (run / "eval.json").write_text(json.dumps({**EVAL, "accuracy": acc, "ms_per_image": 5.0}))
    at = app_test("compare").run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table.columns[:6]) == ["backbone", "strategy", "test accuracy", "F1", "size (MB)", "ms/image"]
    assert "val_accuracy" not in table.columns and "validation accuracy" in table.columns
    rows = {r["run"]: r for r in table.to_dict("records")}
    assert rows[frozen.name]["size (MB)"] == rows[tuned.name]["size (MB)"] == round(250_000 * 4 / 2**20, 3)
    assert rows[tuned.name]["file (MB)"] > 2 * rows[frozen.name]["file (MB)"]
    charts = [json.loads(c.proto.spec) for c in plotly_charts(at)]
    curves, time, size = charts[0], charts[1], charts[2]
    assert curves["layout"]["yaxis"]["title"]["text"] == "validation accuracy"
    assert curves["layout"]["showlegend"] is True
    for scatter in (time, size):
        points = scatter["data"][0]
        assert points["cliponaxis"] is False and all(len(t) <= 40 for t in points["text"])
        assert scatter["layout"]["yaxis"]["title"]["text"] == "test accuracy"


def test_a_single_run_curve_is_named(ws, make_run):
    make_run("done", events=_epochs(0.5, 0.7))
    at = app_test("compare").run()
    curves = json.loads(plotly_charts(at)[0].proto.spec)
    assert len(curves["data"]) == 1 and curves["layout"]["showlegend"] is True and curves["data"][0]["name"]


def test_headings_fit_and_missing_texts_are_not_none(ws, make_run):
    # Issue 28, item 12: "test accurac" and "target accur" were cut; a missing text read "None".
    from pages import compare as page

    assert page.COLUMNS["test_accuracy"][1]["width"] == "medium"
    assert page.COLUMNS["target_accuracy"][1]["width"] == "medium"
    make_run("done")
    (make_run("failed", model=False) / "config.json").write_text("{from an older version")  # no backbone, no strategy
    at = app_test("compare").run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert not frame[["backbone", "strategy", "dataset"]].isna().any().any()  # the grid shows a null as "None"
