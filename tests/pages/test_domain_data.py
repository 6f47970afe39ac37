"""The Data page imports unlabelled images from where the model will be used and marks datasets as such;
the Model page's target selector lists those first."""

import io
import zipfile

from core.store import datasets
from tests.pages.conftest import app_test, assert_clean, image_bytes


def _loose_zip(n: int = 24) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            zf.writestr(f"phone/day{i % 3}/IMG_{i:04d}.png", image_bytes((40 + 5 * i, 120, 90)))
    return buf.getvalue()


def test_an_unlabelled_zip_imports_as_a_target_and_the_page_says_what_it_is(ws, tiny_dataset):
    at = app_test("data").run()
    at.checkbox(key="data.upload_target").check().run()
    at.file_uploader(key="data.upload").set_value(("field.zip", _loose_zip(), "application/zip")).run()
    assert_clean(at)
    [field] = [d for d in datasets.list_datasets(ws) if d["id"] != tiny_dataset["id"]]
    assert field["role"] == "target" and field["classes"] == [] and len(field["unlabeled"]) == 24
    assert any("24 unlabelled images from where the model will be used" in s.value for s in at.success)
    # The dataset in hand stays the labelled one (issue 28); choosing the target shows it.
    assert at.selectbox(key="data.select").value == tiny_dataset["id"]
    at.selectbox(key="data.select").set_value(field["id"]).run()
    assert any("cannot be trained on by itself" in i.value for i in at.info)  # the health report: a sentence
    assert len(at.image) == 24 and not at.toggle  # its images; no marker to unset, no class counts

    # Too few images: a sentence, and the page still draws.
    at = app_test("data").run()
    at.checkbox(key="data.upload_target").check().run()
    at.file_uploader(key="data.upload").set_value(("few.zip", _loose_zip(12), "application/zip")).run()
    assert not at.exception and any("at least 20" in e.value for e in at.error)

    # The Model page trains on the labelled dataset even while the target is the chosen one.
    at = app_test("model")
    at.session_state["dataset_id"] = field["id"]
    at.run()
    assert_clean(at)
    assert any(tiny_dataset["name"] in m.value for m in at.caption)


def test_a_marked_dataset_is_offered_first_as_the_target(ws, tiny_dataset, tmp_path):
    from core.data import importer

    src = tmp_path / "two"
    for label, colour in (("red", (150, 60, 60)), ("blue", (60, 60, 150))):
        (src / label).mkdir(parents=True)
        for i in range(11):
            (src / label / f"{i}.png").write_bytes(image_bytes(colour))
    field = importer.import_path(src, ws, name="field")
    newest = importer.import_path(src, ws, name="studio")  # newest: first unless the marker says otherwise
    at = app_test("data")
    at.session_state["dataset_id"] = field["id"]
    at.run()
    toggle = at.toggle(key=f"data.target_marker.{field['id']}")
    assert toggle.value is False
    toggle.set_value(True).run()
    assert_clean(at)
    assert datasets.is_target(datasets.load_dataset(field["id"], ws))
    at.toggle(key=f"data.target_marker.{field['id']}").set_value(False).run()
    assert not datasets.is_target(datasets.load_dataset(field["id"], ws))
    datasets.mark_target(field["id"], ws, True)

    at = app_test("model")
    at.session_state["dataset_id"] = tiny_dataset["id"]
    at.run()
    at.selectbox(key="model.strategy").set_value("adaptive_layers").run()
    assert_clean(at)
    target = at.selectbox(key="model.target_dataset_id")
    assert target.options[0].startswith("field") and "marked as where the model will be used" in target.options[0]
    assert target.value == field["id"] and len(target.options) == 2 and target.options[1].startswith(newest["name"])


def test_the_predictions_page_offers_the_domain_map_for_a_run_with_a_target(ws, make_run):
    make_run("done", strategy="adaptive_layers", target_dataset_id="field-0123abcd")
    at = app_test("predictions").run()
    assert_clean(at)
    assert at.button(key="pred.domain_map")  # nothing computed yet: a button, no TensorFlow on the page


def test_a_target_zip_keeps_class_folders_named_like_the_dataset_in_hand(ws, tiny_dataset, make_run):
    # Issue 28, item 4: ticking the target box no longer throws the class folders away, so the target accuracy
    # can be measured without a second upload or a separate switch.
    from tests.pages.conftest import class_zip

    at = app_test("data").run()
    at.checkbox(key="data.upload_target").check().run()
    at.file_uploader(key="data.upload").set_value(("gray.zip", class_zip(per_class=12), "application/zip")).run()
    assert_clean(at)
    [gray] = [d for d in datasets.list_datasets(ws) if d["name"] == "gray"]
    assert gray["role"] == "target" and gray["classes"] == ["blue", "red"] and gray["counts"] == {"blue": 12, "red": 12}
    assert any("in class folders (blue, red) that measure accuracy there" in s.value for s in at.success)
    assert at.selectbox(key="data.select").value == tiny_dataset["id"]  # still the dataset in hand

    model = app_test("model").run()
    model.selectbox(key="model.strategy").set_value("domain_adversarial").run()
    assert_clean(model)
    assert model.selectbox(key="model.target_dataset_id").value == gray["id"]
    assert not any("add class folders" in i.value for i in model.info)
