"""Data: the sample button, zip upload (imported once), folder import, the hosted switch, and errors."""

import io
import zipfile

from core import datasets
from tests.pages.conftest import app_test, assert_clean, class_zip, plotly_charts


def test_sample_button_creates_a_dataset_and_shows_its_class_counts(ws):
    at = app_test("data").run()
    assert_clean(at)
    assert at.get("plotly_chart") == []
    at.button(key="data.sample").click().run()
    assert_clean(at)
    found = datasets.list_datasets(ws)
    assert len(found) == 1
    assert at.session_state["dataset_id"] == found[0]["id"]
    charts = plotly_charts(at)
    assert len(charts) == 1 and "Images per class" in charts[0].proto.spec
    counts = at.dataframe[0].value
    assert dict(zip(counts["class"], counts["images"])) == found[0]["counts"]
    assert len(at.image) == 4  # one gallery row per class


def test_uploaded_zip_is_imported_once_and_selected(ws):
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("my fruit.zip", class_zip(), "application/zip")).run()
    assert_clean(at)
    found = datasets.list_datasets(ws)
    assert len(found) == 1
    info = found[0]
    assert info["name"] == "my fruit" and info["counts"] == {"blue": 3, "red": 3}
    assert at.session_state["dataset_id"] == info["id"]
    assert at.selectbox(key="data.select").value == info["id"]
    assert any("Imported 'my fruit'" in s.value for s in at.success)
    assert len(plotly_charts(at)) == 1
    # Too few images per class for good training: the health warnings say so.
    assert any("only 3 images" in w.value for w in at.warning)

    at.run()  # the file is still in the uploader: no second import
    assert len(datasets.list_datasets(ws)) == 1


def test_skipped_files_are_listed_with_their_reasons(ws):
    extra = {"red/notes.txt": b"hello", "blue/broken.png": b"not really a png"}
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("mixed.zip", class_zip(extra=extra), "application/zip")).run()
    assert_clean(at)
    skipped = at.expander[0]
    assert "2 file(s) were skipped" in skipped.label
    table = skipped.dataframe[0].value
    assert set(table["file"]) == {"red/notes.txt", "blue/broken.png"}
    assert all(table["reason"])


def test_a_bad_upload_shows_a_sentence_not_a_traceback(ws):
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("photos.zip", b"this is not a zip", "application/zip")).run()
    assert not at.exception
    assert len(at.error) == 1 and "not a readable zip file" in at.error[0].value
    assert datasets.list_datasets(ws) == []


def test_server_folder_import(ws, tmp_path):
    src = tmp_path / "folder"
    src.mkdir()
    zipfile.ZipFile(io.BytesIO(class_zip())).extractall(src)
    at = app_test("data").run()
    at.text_input(key="data.folder").input(str(src)).run()
    at.button(key="data.folder_import").click().run()
    assert_clean(at)
    assert [d["counts"] for d in datasets.list_datasets(ws)] == [{"blue": 3, "red": 3}]


def test_server_folder_import_is_off_when_hosted(ws, monkeypatch):
    monkeypatch.setenv("TL_HOSTED", "1")
    at = app_test("data").run()
    assert_clean(at)
    assert at.text_input(key="data.folder").disabled
    assert at.button(key="data.folder_import").disabled


def test_selector_switches_the_dataset(ws, tiny_dataset):
    other = datasets.import_path(ws / "datasets" / tiny_dataset["id"], ws, name="copy")
    at = app_test("data").run()
    assert at.session_state["dataset_id"] == other["id"]  # newest first
    at.selectbox(key="data.select").set_value(tiny_dataset["id"]).run()
    assert_clean(at)
    assert at.session_state["dataset_id"] == tiny_dataset["id"]


def test_a_refused_import_still_lists_the_existing_datasets(ws, tiny_dataset):
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("one class.zip", class_zip(per_class=0, extra={
        "only/a.png": b"", "only/b.png": b""}), "application/zip")).run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.selectbox(key="data.select").value == tiny_dataset["id"]
    assert len(plotly_charts(at)) == 1
