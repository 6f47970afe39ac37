"""Predictions: a finished run's test metrics, and the Try-it uploader."""

import core.evaluation
from tests.pages.conftest import EVAL, app_test, assert_clean, image_bytes, plotly_charts


def test_no_finished_run_shows_guidance(ws, make_run):
    make_run("running")
    at = app_test("predictions").run()
    assert_clean(at)
    assert "No run has finished" in at.info[0].value


def test_lists_finished_runs_and_shows_their_metrics(ws, make_run):
    make_run("failed")
    done = make_run("done")
    at = app_test("predictions").run()
    assert_clean(at)
    select = at.selectbox(key="pred.run")
    assert select.value == done.name
    assert select.options == [f"{done.name} · MobileNet V2 (width 0.35) · test accuracy 90.0%"]  # finished runs only
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == "90.0%"
    assert metrics["Macro F1"] == "89.9%"
    assert metrics["Weighted F1"] == "89.9%"
    assert metrics["Test images"] == "10"
    averages, per_class = (d.value for d in at.dataframe)
    assert list(averages["precision"]) == [EVAL["macro"]["precision"], EVAL["weighted"]["precision"]]
    assert list(per_class["class"]) == ["blue", "red"]
    assert list(per_class["test images"]) == [5, 5]
    (confusion,) = plotly_charts(at)
    assert "Confusion matrix" in confusion.proto.spec
    assert at.file_uploader(key="pred.upload")


def test_the_active_run_is_selected_first(ws, make_run):
    first = make_run("done")
    make_run("done")
    at = app_test("predictions")
    at.session_state["run_id"] = first.name
    at.run()
    assert at.selectbox(key="pred.run").value == first.name


def test_a_run_without_a_model_cannot_be_tried(ws, make_run):
    make_run("done", model=False)
    at = app_test("predictions").run()
    assert_clean(at)
    assert not at.file_uploader
    assert "no saved model" in at.info[0].value


def test_a_run_without_eval_says_so(ws, make_run):
    run_dir = make_run("done")
    (run_dir / "eval.json").unlink()
    at = app_test("predictions").run()
    assert not at.exception
    assert "no test evaluation" in at.warning[0].value


def test_try_it_predicts_through_core(ws, make_run, monkeypatch):
    # core.evaluation.predict is replaced, so no model is loaded and TensorFlow is not needed.
    calls = []

    def fake_predict(run_dir, images, top_k=3):
        calls.append((run_dir.name, [name for name, _ in images]))
        return [
            {"file": "a.png", "prediction": "red", "top": [{"class": "red", "probability": 0.8},
                                                            {"class": "blue", "probability": 0.2}]},
            {"file": "b.png", "error": "'b.png' was skipped: not a readable image (UnidentifiedImageError)."},
        ]

    monkeypatch.setattr(core.evaluation, "predict", fake_predict)
    run_dir = make_run("done")
    at = app_test("predictions").run()
    at.file_uploader(key="pred.upload").set_value([
        ("a.png", image_bytes((200, 20, 20)), "image/png"),
        ("b.png", b"garbage", "image/png"),
    ]).run()
    assert_clean(at)
    assert calls == [(run_dir.name, ["a.png", "b.png"])]
    assert any("**red** (80% sure)" in m.value for m in at.markdown)
    assert "not a readable image" in at.warning[0].value
    assert len(plotly_charts(at)) == 2  # confusion matrix + one probability chart

    at.run()  # same files: the result is reused, not predicted again
    assert len(calls) == 1
