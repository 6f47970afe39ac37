"""Data: every way in (zip, classes built here, samples, server folder), the health report, split settings,
the paged gallery, the augmentation preview, and deleting a dataset."""

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from core.data import images, importer, samples
from core.engine.augment import augmentation_preview
from core.errors import DatasetError
from core.spec.config import AugmentConfig
from core.store import datasets
from tests.conftest import ROOT
from tests.pages.conftest import app_test, assert_clean, class_zip, image_bytes, plotly_charts


def _titles(at):
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in plotly_charts(at)]


def test_sample_button_creates_a_dataset_and_shows_its_report(ws):
    at = app_test("data").run()
    assert_clean(at)
    assert at.get("plotly_chart") == []
    at.button(key="data.sample").click().run()
    assert_clean(at)
    found = datasets.list_datasets(ws)
    assert len(found) == 1 and found[0]["name"] == "shapes"
    assert at.session_state["dataset_id"] == found[0]["id"]
    assert _titles(at) == ["Images per class", "Image sizes (as uploaded)", "Images per class in each part of the split"]
    counts = at.dataframe[0].value
    assert dict(zip(counts["class"], counts["images"])) == found[0]["counts"]
    assert {m.label: m.value for m in at.metric}["Images"] == "600"
    # The gallery shows one page of the first class: its thumbnails only.
    assert len(at.image) == 24
    at.button(key="data.sample").click().run()  # loading it again selects the copy already there
    assert len(datasets.list_datasets(ws)) == 1


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
    assert "Images per class" in _titles(at)
    # Too few images per class for good training: the health warnings say so.
    assert any("2 classes have fewer than 10 images ('blue': 3, 'red': 3)" in w.value for w in at.warning)

    at.run()  # the file is still in the uploader: no second import
    assert len(datasets.list_datasets(ws)) == 1


def test_skipped_files_are_listed_with_their_reasons(ws):
    extra = {"red/notes.txt": b"hello", "blue/broken.png": b"not really a png", "__MACOSX/red/._x.png": b"junk"}
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("mixed.zip", class_zip(extra=extra), "application/zip")).run()
    assert_clean(at)
    skipped = next(e for e in at.expander if "skipped" in e.label)
    assert "2 file(s) were skipped" in skipped.label
    table = skipped.dataframe[0].value
    assert set(table["file"]) == {"red/notes.txt", "blue/broken.png"}
    assert all(table["reason"])
    assert any("1 system file(s)" in c.value for c in at.caption)


def test_a_bad_upload_shows_a_sentence_not_a_traceback(ws):
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("photos.zip", b"this is not a zip", "application/zip")).run()
    assert not at.exception
    assert len(at.error) == 1 and "not a readable zip file" in at.error[0].value
    assert datasets.list_datasets(ws) == []


def test_upload_caption_names_the_upload_limit(ws):
    limit = 200  # server.maxUploadSize in .streamlit/config.toml
    assert f"maxUploadSize = {limit}" in (ROOT / ".streamlit" / "config.toml").read_text()
    at = app_test("data").run()
    assert any(f"up to {limit} MB" in c.value for c in at.caption)


def test_cross_class_copies_are_shown_with_both_images(ws):
    same = image_bytes((120, 120, 0))
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(
        ("clash.zip", class_zip(extra={"red/dup.png": same, "blue/dup.png": same}), "application/zip")).run()
    assert_clean(at)
    assert any("appear in more than one class" in w.value for w in at.warning)
    # One row holding both copies, each captioned with its class.
    (row,) = [img for img in at.image if any(" · " in c and c.endswith("dup.png") is False for c in img.captions)
              and len(img.captions) == 2]
    assert sorted(c.split(" · ")[0] for c in row.captions) == ["blue", "red"]


def test_predefined_split_zip_keeps_its_split(ws):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for part, n in (("train", 4), ("val", 1), ("test", 2)):
            for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
                for i in range(n):
                    zf.writestr(f"{part}/{label}/{i}.png", image_bytes((colour[0] + i, colour[1], colour[2] + part.__len__())))
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("split.zip", buf.getvalue(), "application/zip")).run()
    assert_clean(at)
    assert any("came with its own train, val and test folders" in i.value for i in at.info)
    table = next(d.value for d in at.dataframe if "training" in d.value.columns)
    assert table.set_index("class").to_dict("index") == {
        "blue": {"training": 4, "validation": 1, "test": 2}, "red": {"training": 4, "validation": 1, "test": 2}}


def test_split_settings_change_the_counts_and_reach_the_model_page(ws, tiny):
    at = app_test("app").run()
    at.switch_page("pages/model.py").run()  # the Model page has filled its form once
    at.switch_page("pages/data.py").run()
    assert_clean(at)
    at.slider(key="data.test_fraction").set_value(0.3).run()
    at.number_input(key="data.seed").set_value(7).run()
    assert_clean(at)
    table = next(d.value for d in at.dataframe if "training" in d.value.columns)
    assert list(table["test"]) == [4, 4, 4]  # 30% of 12 per class
    at.slider(key="data.val_fraction").set_value(0.4).run()
    assert any("must leave at least 40%" in w.value for w in at.warning)
    at.slider(key="data.val_fraction").set_value(0.2).run()
    # The Model page's form, and so the config the Train page uses, now holds the same split.
    at.switch_page("pages/model.py").run()
    config = json.loads(at.session_state["run_config"])
    assert (config["val_fraction"], config["test_fraction"], config["seed"]) == (0.2, 0.3, 7)


def test_per_class_upload_flow(ws):
    at = app_test("data").run()
    at.text_input(key="data.class_name.1").input("Ripe").run()
    at.text_input(key="data.class_name.2").input("Unripe").run()
    at.file_uploader(key="data.class_files.1").set_value(
        [(f"r{i}.png", image_bytes((220, 30 + i, 30)), "image/png") for i in range(3)]).run()
    at.file_uploader(key="data.class_files.2").set_value(
        [(f"u{i}.jpg", image_bytes((30, 220, 30 + i), "JPEG"), "image/jpeg") for i in range(2)]).run()
    at.button(key="data.add_class").click().run()
    assert at.text_input(key="data.class_name.3").value == "Class 3"
    at.button(key="data.class_delete.3").click().run()
    assert "data.class_name.3" not in [t.key for t in at.text_input]
    at.file_uploader(key="data.unlabeled_files.0").set_value([("x.png", image_bytes((1, 2, 3)), "image/png")]).run()
    at.text_input(key="data.builder_name").input("Tomatoes").run()
    at.button(key="data.build").click().run()
    assert_clean(at)
    (info,) = datasets.list_datasets(ws)
    assert info["name"] == "Tomatoes" and info["counts"] == {"Ripe": 3, "Unripe": 2} and len(info["unlabeled"]) == 1
    assert at.session_state["dataset_id"] == info["id"]
    # The builder starts afresh for the next dataset.
    assert [t.value for t in at.text_input if t.key.startswith("data.class_name.")] == ["Class 1", "Class 2"]


def test_per_class_upload_with_a_repeated_name_is_refused(ws):
    at = app_test("data").run()
    at.text_input(key="data.class_name.2").input("class 1").run()
    for slot in (1, 2):
        at.file_uploader(key=f"data.class_files.{slot}").set_value(
            [(f"{slot}{i}.png", image_bytes((slot * 90, i, 0)), "image/png") for i in range(2)]).run()
    at.button(key="data.build").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Two classes are both named 'Class 1'; give every class its own name."]
    assert datasets.list_datasets(ws) == []


def test_flowers_sample_offline_says_so_in_one_sentence(ws, monkeypatch):
    monkeypatch.setenv("TL_OFFLINE", "1")
    at = app_test("data").run()
    at.radio(key="data.sample_name").set_value("flowers").run()
    at.button(key="data.sample").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [samples.FLOWERS_OFFLINE]
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


@pytest.mark.parametrize("flag", ["1", "true", " yes "])
def test_server_folder_import_is_off_when_hosted(ws, monkeypatch, tiny_dataset, flag):
    monkeypatch.setenv("TL_HOSTED", flag)
    monkeypatch.setenv("TL_QUEUE_DIR", "x")
    monkeypatch.delenv("TL_QUEUE_DIR")  # the app sets it in hosted mode: undone after the test
    at = app_test("data").run()
    assert_clean(at)
    assert at.text_input(key="data.folder").disabled
    assert at.button(key="data.folder_import").disabled
    # And in core, whatever the page does: a typed server path is never read on a shared server.
    with pytest.raises(DatasetError, match="switched off"):
        importer.import_server_folder(ws / "datasets" / tiny_dataset["id"], ws)


def test_selector_switches_the_dataset(ws, tiny_dataset):
    other = importer.import_path(ws / "datasets" / tiny_dataset["id"], ws, name="copy")
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
    assert "Images per class" in _titles(at)


def test_delete_asks_first_then_deletes(ws, tiny_dataset, make_run):
    make_run(dataset_id=tiny_dataset["id"])
    at = app_test("data").run()
    at.button(key="data.delete").click().run()
    assert any("for good?" in w.value and "1 training run(s) used it" in w.value for w in at.warning)
    at.button(key="data.delete_no").click().run()
    assert len(datasets.list_datasets(ws)) == 1 and not [b for b in at.button if b.key == "data.delete_yes"]
    at.button(key="data.delete").click().run()
    at.button(key="data.delete_yes").click().run()
    assert_clean(at)
    assert datasets.list_datasets(ws) == []
    assert any("Deleted 'tiny'" in s.value for s in at.success)


def _big_dataset(ws, per_class: int = 5000) -> str:
    """A 10,000-image dataset.json written directly, as an import would leave it.

    Only the images of the first and the last gallery page exist on disk: a page that read any other
    image would fail, so the test sees that the gallery touches only what it shows.
    """
    dataset_id = "big-0123abcd"
    root = ws / "datasets" / dataset_id
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buf, "JPEG")
    images = {}
    for label in ("left", "right"):
        (root / label).mkdir(parents=True)
        images[label] = [f"{label}/{i:05d}.jpg" for i in range(per_class)]
        for rel in images[label][:24] + images[label][-8:]:
            (root / rel).write_bytes(buf.getvalue())
    info = {"id": dataset_id, "name": "big", "source": "test", "created": 1.0, "classes": ["left", "right"],
            "counts": {c: per_class for c in images}, "images": images, "image_sizes": [[40, 30]] * (2 * per_class),
            "hashes": {rel: f"{i:064x}" for i, rel in enumerate(images["left"] + images["right"])},
            "skipped": [], "warnings": []}
    (root / "dataset.json").write_text(json.dumps(info))
    return dataset_id


def test_gallery_of_10000_images_reads_only_one_page(ws, monkeypatch):
    _big_dataset(ws)
    calls = []
    original = images.thumbnail
    monkeypatch.setattr(images, "thumbnail", lambda path, *a: calls.append(path.name) or original(path, *a))
    at = app_test("data").run()
    assert_clean(at)
    assert len(calls) == 24 and calls[0] == "00000.jpg"
    assert at.number_input(key="data.gallery_page").label == "Page (of 209)"
    calls.clear()
    at.number_input(key="data.gallery_page").set_value(209).run()
    at.selectbox(key="data.gallery_class").set_value("right").run()
    assert_clean(at)
    assert calls[-8:] == [f"{i:05d}.jpg" for i in range(4992, 5000)]  # the last, partly filled page
    at.button(key="data.enlarge.right/04999.jpg").click().run()
    # The large view opens in a dialog over the page, where the viewer is looking.
    (dialog,) = [b for b in at.main if getattr(b, "type", "") == "dialog"] or list(at.get("dialog"))
    assert [img.captions for img in dialog.image] == [["right · right/04999.jpg"]]


def test_data_page_opens_without_tensorflow(ws, tiny):
    code = (
        "import sys\nfrom streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('pages/data.py', default_timeout=60).run()\n"
        "assert not at.exception and not at.error, [e.value for e in at.exception]\n"
        "print('tensorflow' in sys.modules, len(at.get('plotly_chart')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TL_WORKSPACE": str(ws)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False 3"


def test_augmentation_preview_uses_the_training_layers(ws, tiny):
    at = app_test("data").run()
    at.checkbox(key="data.augment.brightness").check().run()
    assert at.session_state["model.augment.brightness"] is True
    at.toggle(key="data.preview").set_value(True).run()
    assert_clean(at)
    rows = [img for img in at.image if any("as trained" in c for c in img.captions)]
    assert len(rows) == 3 and all(len(r.captions) == 5 for r in rows)


@pytest.mark.parametrize("switches", [{"flip": True}, {}])
def test_preview_rows_match_augmentation_preview(tiny, ws, switches):

    augment = AugmentConfig(**{k: switches.get(k, False) for k in ("flip", "rotate", "zoom", "contrast", "brightness", "translate")})
    root = datasets.dataset_path(tiny["id"], ws)
    rows = augmentation_preview([root / tiny["images"]["square"][0]], augment, seed=1, image_size=32, variants=6)
    original, *variants = rows[0]
    assert original.shape == (32, 32, 3) and original.dtype.name == "uint8" and len(variants) == 6
    if switches:
        assert any((v == original[:, ::-1]).all() for v in variants)  # some copies are mirrored
    else:
        assert all((v == original).all() for v in variants)


def test_a_photo_in_the_zip_box_gets_a_sentence_not_a_red_icon(ws):
    # Issue 28, item 8: the browser's type filter showed only an icon; the server now says what to do.
    at = app_test("data").run()
    assert not list(at.file_uploader(key="data.upload").proto.type)  # no filter in the browser
    at.file_uploader(key="data.upload").set_value(("rose.jpg", image_bytes((200, 30, 60), "JPEG"), "image/jpeg")).run()
    assert not at.exception
    assert "'rose.jpg' is an image, not a zip" in at.error[0].value and "Build classes here" in at.error[0].value
