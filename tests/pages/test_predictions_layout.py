"""Predictions, newcomer findings: the confusion matrix without a tab click, a clicked cell opens its images,
Grad-CAM keeps the photo's shape."""

import io
import json

import numpy as np
from PIL import Image

from core.engine import evaluation, interpret
from pages import _charts as charts
from tests.pages.conftest import app_test, assert_clean, plotly_charts
from tests.pages.test_predictions import _tab, _with_predictions


def test_the_confusion_matrix_is_in_the_first_tab_and_takes_clicks(ws, make_run, tiny_dataset):
    run_dir = make_run("done", dataset_id=tiny_dataset["id"])
    _with_predictions(run_dir, tiny_dataset)
    at = app_test("predictions").run()
    assert_clean(at)
    assert at.tabs[0].label == "Test scores and confusion matrix"
    chart = plotly_charts(at.tabs[0])[0]
    spec = json.loads(chart.proto.spec)
    assert spec["layout"]["title"]["text"] == "Confusion matrix"
    cells = spec["data"][1]  # the click layer: one square per cell
    assert cells["type"] == "scatter" and len(cells["x"]) == 4
    assert chart.proto.selection_mode and chart.proto.id  # on_select: a click reruns with the selection


def test_a_click_names_the_cell():
    cells = [{"true": "blue", "predicted": "red", "count": 1}, {"true": "red", "predicted": "red", "count": 2}]
    assert charts.clicked_cell({"selection": {"points": [{"x": "red", "y": "red", "point_index": 3}]}}, cells) == 1
    assert charts.clicked_cell({"selection": {"points": [{"x": "red", "y": "blue"}]}}, cells) == 0
    assert charts.clicked_cell({"selection": {"points": []}}, cells) is None
    assert charts.clicked_cell(None, cells) is None


def test_gradcam_keeps_the_photos_aspect_ratio(ws, make_run, monkeypatch):
    make_run("done")
    monkeypatch.setattr(evaluation, "load_model", lambda run_dir: "the model")
    monkeypatch.setattr(evaluation, "predict", lambda run_dir, items, top_k, model: [
        {"file": name, "prediction": "red", "top": [{"class": "red", "probability": 0.8}]} for name, _ in items])
    monkeypatch.setattr(interpret, "explain", lambda model, data, size, index: {
        "image": np.zeros((8, 8, 3), np.uint8), "heatmap": np.eye(8), "class_index": index, "layer": "x"})
    portrait = io.BytesIO()
    Image.new("RGB", (30, 60), (200, 20, 20)).save(portrait, "PNG")
    at = app_test("predictions").run()
    at.file_uploader(key="pred.upload").set_value([("tall.png", portrait.getvalue(), "image/png")]).run()
    assert_clean(at)
    overlay = json.loads(plotly_charts(_tab(at, "Try it"))[1].proto.spec)["data"]
    heat = next(t for t in overlay if t["type"] == "heatmap")
    shape = heat["z"]["shape"] if isinstance(heat["z"], dict) else f"{len(heat['z'])}, {len(heat['z'][0])}"
    assert shape.replace(" ", "") == "320,160"  # 1:2 like the photo, not the model's square
