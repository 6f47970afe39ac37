"""The app entry point: navigation over every page, and the sidebar's job status."""

import os
import time

import pytest
from streamlit.runtime.pages_manager import PagesManager

from tests.pages.conftest import app_test, assert_clean

PAGES = ["home", "data", "model", "train", "search", "predictions", "compare", "export"]


@pytest.mark.parametrize("name", PAGES)
def test_every_page_opens_through_the_navigation(ws, name):
    at = app_test("app").run()
    at.switch_page(f"pages/{name}.py").run()
    assert_clean(at)
    assert at.title


def test_sidebar_shows_the_workspace_and_reattaches_the_run_in_the_url(ws, make_run):
    run_dir = make_run("running", status={"pid": os.getpid(), "created": time.time()})
    at = app_test("app")
    at.query_params["run"] = run_dir.name
    at.run()
    assert_clean(at)
    assert str(ws) in at.sidebar.caption[0].value
    assert any("training" in m.value for m in at.sidebar.markdown)
    assert at.sidebar.get("progress")
    at.switch_page("pages/compare.py").run()
    assert at.query_params.get("run") == run_dir.name  # kept in the URL across pages


def test_sidebar_without_a_run(ws):
    at = app_test("app").run()
    assert any("No training run yet" in c.value for c in at.sidebar.caption)


def test_a_deep_link_before_any_root_visit_still_goes_through_the_router(ws):
    # A fresh server whose first visitor opens /train: Streamlit would run pages/train.py on its
    # own (legacy pages/ folder mode). The page hands the request back to app.py.
    at = app_test("app")
    at.switch_page("pages/train.py")  # before the first run: the page is named by its file, as in a URL
    at.run()
    assert_clean(at)
    assert at.title[0].value == "Train"
    assert any("Workspace" in c.value for c in at.sidebar.caption)  # app.py's sidebar ran
    assert PagesManager.uses_pages_directory is False
