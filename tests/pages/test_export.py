"""Export: the model file and labels.txt of a finished run, and an honest note on other formats."""

from tests.pages.conftest import app_test, assert_clean


def test_no_model_yet(ws, make_run):
    make_run("failed")
    at = app_test("export").run()
    assert_clean(at)
    assert "No trained model yet" in at.info[0].value
    assert not at.download_button
    assert "not available yet" in at.info[-1].value


def test_downloads_for_a_finished_run(ws, make_run):
    run_dir = make_run("done", image_size=160)
    at = app_test("export").run()
    assert_clean(at)
    assert at.selectbox(key="export.run").value == run_dir.name
    model, labels = at.download_button(key="export.model"), at.download_button(key="export.labels")
    assert model.label == "Download model.keras" and labels.label == "Download labels.txt"
    assert labels.help.endswith("outputs: blue, red")  # split.json's classes, in order
    assert any("160×160" in m.value for m in at.markdown)
    assert "SavedModel" in at.info[-1].value and "not available yet" in at.info[-1].value
