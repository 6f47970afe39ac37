"""Predictions: a finished run's test scores and mistakes, its curves, the Try-it uploaders and the embedding view."""

import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.engine import evaluation, interpret
from core.store import files
from tests.core.engine.test_evaluation import trained_copy
from tests.pages.conftest import EVAL, app_test, assert_clean, image_bytes, plotly_charts


def _with_predictions(run_dir, dataset):
    """Replace a fake run's eval.json by one with stored predictions over the dataset's images (blue, red)."""
    files = [*dataset["images"]["blue"], *dataset["images"]["red"]]
    true = [0, 0, 0, 1, 1, 1]
    probs = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.05, 0.95], [0.6, 0.4], [0.2, 0.8]]
    predictions = [{"file": f, "true": t, "pred": int(np.argmax(p)), "probs": p} for f, t, p in zip(files, true, probs)]
    ev = {**EVAL, "n": 6, "classes": dataset["classes"], "predictions": predictions}
    (run_dir / "eval.json").write_text(json.dumps(ev))
    return true, probs


def _frame(at, column):
    """The first table on the page with this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _tab(at, label):
    return next(t for t in at.tabs if t.label == label)


def test_no_finished_run_shows_guidance(ws, make_run):
    make_run("running")
    at = app_test("predictions").run()
    assert_clean(at)
    assert "No run has finished" in at.info[0].value


def test_lists_finished_runs_and_shows_stored_metrics_of_an_old_eval(ws, make_run):
    # EVAL has no per-image predictions (an older eval.json): the stored numbers show, the rest says why not.
    make_run("failed")
    done = make_run("done")
    at = app_test("predictions").run()
    assert_clean(at)
    select = at.selectbox(key="pred.run")
    assert select.value == done.name
    # Finished runs only, each named by what it is (issue 28, item 6).
    assert select.options == ["MobileNet V2 (width 0.35) · Feature extraction · on tiny-0123abcd · test accuracy 90.0% · "
                              f"made 01/01 {done.name[9:11]}:{done.name[11:13]}:{done.name[13:15]}"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Test accuracy": "90.0%", "Macro F1": "89.9%", "Weighted F1": "89.9%", "ROC-AUC": "-",
                       "Test images": "10"}
    averages = _frame(at, "average")
    assert list(averages["precision"]) == pytest.approx([100 * EVAL["macro"]["precision"],
                                                         100 * EVAL["weighted"]["precision"]])  # percent, 1 decimal
    per_class = _frame(at, "test images")
    assert list(per_class["class"]) == ["blue", "red"] and list(per_class["test images"]) == [5, 5]
    first = _tab(at, "Test scores and confusion matrix")
    assert "Confusion matrix" in plotly_charts(first)[0].proto.spec  # in the first tab: no tab click needed
    assert any("no stored per-image predictions" in c.value for c in first.caption)
    pairs = _frame(at, "share of the true class")
    assert pairs.to_dict("records") == [{"true": "red", "predicted": "blue", "test images": 1,
                                         "share of the true class": 20.0}]
    assert at.file_uploader(key="pred.upload") and at.file_uploader(key="pred.zip")


def test_scores_mistakes_and_cells_from_stored_predictions(ws, make_run, tiny_dataset):
    run_dir = make_run("done", dataset_id=tiny_dataset["id"])
    true, probs = _with_predictions(run_dir, tiny_dataset)
    at = app_test("predictions").run()
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{4 / 6:.1%}"
    assert metrics["ROC-AUC"] == f"{roc_auc_score(true, np.array(probs)[:, 1]):.3f}"
    assert "ROC curves" in plotly_charts(_tab(at, "Test scores and confusion matrix"))[1].proto.spec
    # The selector beside the matrix: mix-ups first; choosing one shows exactly its images.
    cell = at.selectbox(key="pred.cell")
    assert cell.options[:2] == ["true blue → guessed red (1)", "true red → guessed blue (1)"]
    first = _tab(at, "Test scores and confusion matrix")
    assert [c for img in first.image for c in img.captions][0] == "00002.jpg"
    cell.set_value(3).run()  # true red -> guessed red, 2 images
    assert at.selectbox(key="pred.cell").value == 3
    assert [img.captions for img in _tab(at, "Test scores and confusion matrix").image][0] == ["00000.jpg", "00002.jpg"]
    mistakes = _tab(at, "Mistakes")
    gallery = [img.captions for img in mistakes.image]
    # Confident mistakes: wrong answers only, the most confidently wrong first, each with both probabilities.
    assert gallery[0][0] == "true blue (30%), guessed red (70%)"
    assert len(gallery[0]) == 2  # the two misclassified test images, no right answer among them
    losses = _frame(at, "loss")
    assert list(losses["loss"]) == sorted(losses["loss"], reverse=True)
    assert "Confidence of right and wrong answers" in plotly_charts(mistakes)[-1].proto.spec


def test_training_curves_warn_when_validation_loss_rises(ws, make_run):
    losses = [(1.0, 1.0), (0.6, 0.7), (0.4, 0.8), (0.3, 0.9), (0.2, 1.1)]
    events = [{"type": "epoch_end", "phase": "head", "epoch": i + 1, "epochs": 5, "seconds": 1.0,
               "metrics": {"loss": t, "val_loss": v, "accuracy": 0.5, "val_accuracy": 0.5}}
              for i, (t, v) in enumerate(losses)]
    make_run("done", events=events)
    at = app_test("predictions").run()
    assert_clean(at)
    curves = _tab(at, "Training curves")
    assert "lowest at epoch 2" in curves.warning[0].value
    assert len(plotly_charts(curves)) == 2


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


@pytest.fixture
def fake_model(monkeypatch):
    """core.engine.evaluation's model loading and prediction replaced: no TensorFlow is needed."""
    calls = []

    def fake_predict(run_dir, images, top_k=3, model=None):
        calls.append((run_dir.name, [name for name, _ in images], model))
        return [
            {"file": name, "prediction": "red", "top": [{"class": "red", "probability": 0.8},
                                                         {"class": "blue", "probability": 0.2}]}
            if data != b"garbage" else
            {"file": name, "error": f"'{name}' was skipped: not a readable image (UnidentifiedImageError)."}
            for name, data in images
        ]

    def fake_explain(model, data, image_size, class_index=None):
        return {"image": np.zeros((4, 4, 3), np.uint8), "heatmap": np.eye(4), "class_index": class_index,
                "layer": "last_conv"}

    monkeypatch.setattr(evaluation, "load_model", lambda run_dir: "the model")
    monkeypatch.setattr(evaluation, "predict", fake_predict)
    monkeypatch.setattr(interpret, "explain", fake_explain)
    return calls


def test_try_it_predicts_through_core(ws, make_run, fake_model):
    run_dir = make_run("done")
    at = app_test("predictions").run()
    at.file_uploader(key="pred.upload").set_value([
        ("a.png", image_bytes((200, 20, 20)), "image/png"),
        ("b.png", b"garbage", "image/png"),
    ]).run()
    assert_clean(at)
    assert fake_model == [(run_dir.name, ["a.png", "b.png"], "the model")]
    trying = _tab(at, "Try it")
    assert any("**red** (80% sure)" in m.value for m in trying.markdown)
    assert "not a readable image" in trying.warning[0].value
    specs = [c.proto.spec for c in plotly_charts(trying)]
    assert len(specs) == 2 and '"heatmap"' in specs[1]  # the probability bars, and the Grad-CAM overlay
    assert any("Grad-CAM heatmap" in c.value for c in trying.caption)
    assert not any("last_conv" in c.value for c in trying.caption)  # no raw layer names

    at.run()  # same files: the result is reused, not predicted again
    assert len(fake_model) == 1
    assert not at.camera_input  # the camera asks for permission, so it is off until switched on
    at.toggle(key="pred.use_camera").set_value(True).run()
    assert_clean(at)
    assert at.camera_input(key="pred.camera")


def test_batch_prediction_of_a_zip_offers_a_csv(ws, make_run, fake_model):
    run_dir = make_run("done")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photos/one.png", image_bytes((200, 20, 20)))
        zf.writestr("photos/two.png", image_bytes((20, 20, 200)))
        zf.writestr("photos/notes.txt", b"not an image")
    at = app_test("predictions").run()
    at.file_uploader(key="pred.zip").set_value(("batch.zip", buf.getvalue(), "application/zip")).run()
    assert_clean(at)
    assert fake_model == [(run_dir.name, ["photos/one.png", "photos/two.png"], "the model")]
    table = _frame(at, "prediction")
    assert list(table["file"]) == ["photos/one.png", "photos/two.png"] and set(table["prediction"]) == {"red"}
    assert at.get("download_button")[0].proto.label == "Download the predictions (CSV)"
    assert any("notes.txt" in m.value and "not an image file type" in m.value for m in at.markdown)


def test_a_zip_without_images_says_so(ws, make_run, fake_model):
    make_run("done")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", b"hello")
    at = app_test("predictions").run()
    at.file_uploader(key="pred.zip").set_value(("batch.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception
    assert "holds no image files" in at.error[0].value
    assert at.metric  # the rest of the page still draws
    assert not fake_model


# ---------------------------------------------------------------- a real trained run


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_source):
    """A copy of a real tiny run, trained once per test session (tests/core/test_evaluation.py)."""
    return trained_copy(tmp_path_factory, tiny_source)


def _clean_but_the_verdict(at):
    """No exception and no error box, except the honest verdict on a tiny 2-epoch model that may still guess."""
    assert not at.exception, [e.value for e in at.exception]
    assert all("about what guessing gets" in e.value for e in at.error), [e.value for e in at.error]


def test_a_real_run_answers_for_an_uploaded_image_and_maps_its_dataset(trained, tiny_source, monkeypatch):
    monkeypatch.setenv("TL_WORKSPACE", str(trained.parent.parent))
    image = next(tiny_source.rglob("*.png"))
    at = app_test("predictions").run()
    _clean_but_the_verdict(at)
    assert at.selectbox(key="pred.run").value == trained.name
    assert at.metric[0].value == f"{files.read_json(trained / 'eval.json')['accuracy']:.1%}"
    at.file_uploader(key="pred.upload").set_value([(image.name, image.read_bytes(), "image/png")]).run()
    _clean_but_the_verdict(at)
    model = at.session_state["pred.model"][1]  # loaded once for this browser session
    expected = evaluation.predict(trained, [(image.name, image.read_bytes())], top_k=5, model=model)[0]
    trying = _tab(at, "Try it")
    assert any(f"**{expected['prediction']}** ({expected['top'][0]['probability']:.0%} sure)" in m.value
               for m in trying.markdown)
    assert len(plotly_charts(trying)) == 2  # probabilities and the Grad-CAM overlay

    embedding = _tab(at, "Embedding view")
    embedding.button(key="pred.embed").click().run()
    _clean_but_the_verdict(at)
    assert at.session_state["pred.model"][1] is model  # not loaded again
    assert (trained / "embeddings.npz").is_file()
    (chart,) = plotly_charts(_tab(at, "Embedding view"))
    assert "PCA of the backbone features (" in chart.proto.spec
    at.radio(key="pred.projection").set_value("t-SNE").run()
    assert "t-SNE of the backbone features" in plotly_charts(_tab(at, "Embedding view"))[0].proto.spec


def test_the_verdict_stands_beside_the_scores_and_is_never_green_far_below_its_baseline(ws, make_run):
    # Issue 28, items 3 and 5: a pruning that lost 25 points read as a plain figure. The Predictions page gives
    # the Train page's verdict: against guessing and against the method's baseline (here the parent before pruning).
    parent = make_run("done", status={"test_accuracy": 0.95})
    child = make_run("done", status={"test_accuracy": 0.70, "pruned_from": parent.name})
    guessing = make_run("done", status={"test_accuracy": 0.52})  # 2 classes
    at = app_test("predictions")
    at.session_state["run_id"] = child.name
    at.run()
    assert_clean(at)
    assert not at.success
    assert any("70.0% against 95.0% for the same model before pruning" in w.value and "lower sparsity" in w.value
               for w in at.warning)
    at.selectbox(key="pred.run").set_value(guessing.name).run()
    assert not at.success
    assert any("about what guessing gets with 2 classes" in e.value and "Try" in e.value for e in at.error)
    at.selectbox(key="pred.run").set_value(parent.name).run()
    assert any(s.value.startswith("Test accuracy 95.0% (guessing would get 50.0%)") for s in at.success)
