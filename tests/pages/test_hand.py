"""The dataset in hand (issue 28, item 1): chosen on the Data page, never switched by an upload, kept by a reload,
and named on every page that uses it."""

import json

from core.spec.config import RunConfig
from core.store import datasets
from tests.pages.conftest import app_test, assert_clean, class_zip


def _hand_lines(at) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("Dataset in hand:")]


def test_a_second_upload_leaves_the_first_dataset_in_hand_on_every_page(ws):
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("flowers.zip", class_zip(), "application/zip")).run()
    at.file_uploader(key="data.upload").set_value(("target_gray_blur.zip", class_zip(), "application/zip")).run()
    assert_clean(at)
    flowers, target = sorted(datasets.list_datasets(ws), key=lambda d: d["name"] != "flowers")
    assert (flowers["name"], target["name"]) == ("flowers", "target_gray_blur")
    assert any("still working with 'flowers'" in i.value for i in at.info)
    assert at.selectbox(key="data.select").value == flowers["id"]

    # Each page opened afresh, as after a reload: the choice lives in the workspace, not in the browser tab.
    model = app_test("model").run()
    assert_clean(model)
    assert "**flowers**" in _hand_lines(model)[0]
    assert RunConfig.from_json(model.session_state["run_config"]).dataset_id == flowers["id"]
    train = app_test("train").run()
    assert "**flowers**" in _hand_lines(train)[0] and any("**Dataset:** flowers" in m.value for m in train.markdown)
    search = app_test("search").run()
    assert_clean(search)
    assert "**flowers**" in _hand_lines(search)[0]


def test_choosing_on_the_data_page_changes_the_dataset_in_hand_for_the_other_pages(ws, tiny_dataset):
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("second.zip", class_zip(), "application/zip")).run()
    second = next(d for d in datasets.list_datasets(ws) if d["name"] == "second")
    assert at.selectbox(key="data.select").value == tiny_dataset["id"]
    at.selectbox(key="data.select").set_value(second["id"]).run()
    assert "**second**" in _hand_lines(app_test("train").run())[0]


def test_run_pickers_start_on_the_best_run_of_the_dataset_in_hand_not_the_newest(ws, tiny_dataset, make_run):
    # Issue 28, item 6: the newest run was a weak search trial; the picker offered it first.
    good = make_run("done", dataset_id=tiny_dataset["id"], status={"test_accuracy": 0.9})
    weak = make_run("done", dataset_id=tiny_dataset["id"], status={"test_accuracy": 0.2, "study": "s", "trial": 0})
    evaluation = json.loads((weak / "eval.json").read_text())
    (weak / "eval.json").write_text(json.dumps({**evaluation, "accuracy": 0.2}))
    at = app_test("predictions").run()
    assert_clean(at)
    picker = at.selectbox(key="pred.run")
    assert picker.value == good.name
    assert weak.name != good.name and len(set(picker.options)) == 2
    assert any("Search trial 1" in o for o in picker.options)
