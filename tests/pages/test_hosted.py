"""Hosted mode in the pages: each browser session (or logged-in user) sees only its own workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data import importer
from core.service import hosting
from tests.pages.conftest import app_test, assert_clean, image_bytes


@pytest.fixture
def hosted(ws, monkeypatch):
    """A shared server: TL_HOSTED=1 with `ws` as its root; the settings the app writes are undone afterwards."""
    monkeypatch.setenv("TL_HOSTED", "1")
    for name in ("TL_QUEUE_DIR", "TL_WORKSPACE_QUOTA_MB", "TL_MAX_ACTIVE_RUNS"):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)  # recorded as absent, so whatever the app sets is removed afterwards
    return ws


def _visitor_workspace(at: AppTest, root: Path) -> Path:
    return hosting.session_workspace(root, at.session_state["_session_workspace"])


def _page_text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "title", "subheader") for e in at.get(kind)]
    parts += [str(getattr(e, "options", "")) for e in at.get("selectbox")]
    parts += [str(getattr(e, "value", "")) for e in at.get("selectbox")]  # pickers show names, hold run ids
    parts += [e.value.to_csv() for e in at.dataframe]  # the Compare page's run table
    return "\n".join(map(str, parts))


def test_two_browser_sessions_never_see_each_others_data(hosted, tiny_source, make_run):
    alice, bob = app_test("app").run(), app_test("app").run()
    ws_a, ws_b = _visitor_workspace(alice, hosted), _visitor_workspace(bob, hosted)
    assert ws_a != ws_b and ws_a.parent == ws_b.parent == hosted / "sessions"
    info = importer.import_path(tiny_source, ws_a, name="alices-photos")
    run_dir = ws_a / "runs" / "20260101-120000-0123456789ab"
    run_dir.parent.mkdir(parents=True)
    make_run("done", dataset_id=info["id"]).rename(run_dir)

    for page, shows in (("data", info["id"]), ("compare", run_dir.name), ("predictions", run_dir.name),
                        ("export", run_dir.name)):
        alice.switch_page(f"pages/{page}.py").run()
        bob.switch_page(f"pages/{page}.py").run()
        assert_clean(alice)
        assert_clean(bob)
        assert shows in _page_text(alice), page  # the check can see what it looks for
        assert info["id"] not in _page_text(bob) and run_dir.name not in _page_text(bob), page

    # Bob opening a link to Alice's run (a new browser session) finds nothing and is told nothing about it.
    link = app_test("app")
    link.query_params["run"] = run_dir.name
    link.run()
    assert_clean(link)
    assert any("No training run yet" in c.value for c in link.sidebar.caption)
    assert any("private to this browser tab" in c.value for c in link.sidebar.caption)
    assert not any(str(hosted) in c.value for c in link.sidebar.caption)  # no server paths on a shared server
    assert "run" not in link.query_params
    link.switch_page("pages/predictions.py").run()
    assert_clean(link)
    assert run_dir.name not in _page_text(link)


def test_a_logged_in_user_keeps_one_workspace_across_visits(hosted, tiny_source):
    def visit() -> AppTest:
        at = app_test("app")
        at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
                              "client_id": "c", "client_secret": "s",
                              "server_metadata_url": "https://accounts.example/.well-known/openid-configuration"}
        at.user = {"is_logged_in": True, "iss": "https://accounts.example", "sub": "ada-1", "name": "Ada",
                   "email": "ada@example.org"}
        return at.run()

    first = visit()
    assert_clean(first)
    assert any("Signed in as **Ada**" in c.value for c in first.sidebar.caption)
    assert first.sidebar.button(key="account.logout")
    users = list((hosted / "users").iterdir())
    assert len(users) == 1 and "ada" not in users[0].name
    info = importer.import_path(tiny_source, users[0], name="adas-photos")
    second = visit()  # a new browser session, the same account
    second.switch_page("pages/data.py").run()
    assert_clean(second)
    assert info["id"] in _page_text(second)
    assert list((hosted / "users").iterdir()) == users
    assert "_session_workspace" not in second.session_state


def test_anonymous_visitors_are_offered_a_login_when_it_is_set_up(hosted):
    at = app_test("app")
    at.secrets["auth"] = {"client_id": "c"}
    at.user = {"is_logged_in": False}
    at.run()
    assert_clean(at)
    assert at.sidebar.button(key="account.login").label == "Log in to keep your work"


def test_the_secrets_flag_turns_hosted_mode_on(ws, monkeypatch):
    monkeypatch.setenv("TL_HOSTED", "0")
    monkeypatch.setenv("TL_QUEUE_DIR", "x")
    monkeypatch.delenv("TL_QUEUE_DIR")
    at = app_test("app")
    at.secrets["transferlab"] = {"hosted": True}
    at.run()
    assert_clean(at)
    assert "_session_workspace" in at.session_state and os.environ["TL_HOSTED"] == "1"


def test_uploads_are_capped_by_the_room_left_in_a_hosted_workspace(hosted, monkeypatch):
    from pages import _common

    (hosted / "big.bin").write_bytes(b"\0" * 2**20)
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "3")
    assert _common.upload_limit_mb(hosted) == 2
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "1")
    assert _common.upload_limit_mb(hosted) == 1  # never 0: the import itself then says what to delete
    monkeypatch.delenv("TL_HOSTED")
    monkeypatch.delenv("TL_WORKSPACE_QUOTA_MB")
    assert _common.upload_limit_mb(hosted) == 200  # server.maxUploadSize in .streamlit/config.toml


def test_a_hub_folder_on_the_server_is_refused_in_a_sentence_when_hosted(hosted, monkeypatch, tmp_path):
    at = app_test("app").run()
    ws = _visitor_workspace(at, hosted)  # the Model page needs a dataset: give this visitor one
    src = tmp_path / "two"
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (src / label).mkdir(parents=True)
        for i in range(3):
            (src / label / f"{i}.png").write_bytes(image_bytes(colour))
    importer.import_path(src, ws, name="two")
    at.switch_page("pages/model.py").run()
    at.radio(key="model_ui.source").set_value("hub").run()
    at.selectbox(key="model_ui.hub_choice").set_value("other").run()
    at.text_input(key="model_ui.hub_handle").set_value(str(tmp_path)).run()
    assert not at.exception
    assert at.error[0].value == ("On this shared server a TF Hub model must be given by its web address (https://…), "
                                 "not by a folder on the server.")
    assert at.title and at.title[0].value == "Model"  # the page goes on; only the field is refused


def test_named_login_providers_each_get_a_button(hosted):
    at = app_test("app")
    table = {"client_id": "c", "client_secret": "s", "server_metadata_url": "https://example.org/.well-known/x"}
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
                          "google": dict(table), "microsoft": dict(table)}
    at.user = {"is_logged_in": False}
    at.run()
    assert_clean(at)
    assert at.sidebar.button(key="account.login.google").label == "Log in with Google to keep your work"
    assert at.sidebar.button(key="account.login.microsoft")
    assert not [b for b in at.sidebar.button if b.key == "account.login"]  # st.login() alone would fail here


def test_an_unreadable_secrets_file_stops_the_app_instead_of_mixing_visitors(ws, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit import config

    monkeypatch.delenv("TL_HOSTED", raising=False)
    broken = tmp_path / "secrets.toml"
    broken.write_text("[transferlab]\nhosted = true\n[auth\n")
    old = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(broken)])
    st.secrets._reset()
    try:
        at = app_test("app").run()
        at.switch_page("pages/data.py").run()
    finally:
        config.set_option("secrets.files", old)
        st.secrets._reset()
    assert not at.exception
    assert any("secrets.toml cannot be read" in e.value for e in at.error)
    assert not (ws / "datasets").exists() and "_session_workspace" not in at.session_state


def test_a_plain_page_load_makes_no_session_folder_and_the_first_write_does(hosted):
    at = app_test("app").run()
    for page in ("data", "model", "train", "predictions", "compare", "export", "home"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
        assert not (hosted / "sessions").exists() or not any((hosted / "sessions").iterdir()), page
    at.button(key="home.start").click().run()  # loads the sample: the first write
    assert_clean(at)
    assert _visitor_workspace(at, hosted).is_dir() and list((hosted / "sessions").iterdir())


def test_two_tabs_from_one_address_share_one_visitor_folder(hosted, monkeypatch):
    from pages import _common

    monkeypatch.setattr(_common, "client_address", lambda: "203.0.113.7")
    tab_a, tab_b = app_test("app").run(), app_test("app").run()
    folders = [hosting.session_path(hosted, t.session_state["_session_workspace"], t.session_state["_session_client"])
               for t in (tab_a, tab_b)]
    assert folders[0] != folders[1] and folders[0].parent == folders[1].parent
    assert folders[0].parent.name.startswith("visitor-")
