"""Export page, "Use it from another program": the serve command, curl and Python filled in with the run's name and labels."""

from core.service import servers
from core.ship import serving
from pages import _common
from tests.pages.conftest import app_test, assert_clean


def _codes(at) -> str:
    return "\n".join(c.value for c in at.code)


def test_serve_command_curl_and_python_client_name_this_run(ws, make_run):
    run_dir = make_run("done", image_size=96)  # dataset 'tiny-0123abcd', labels blue, red
    at = app_test("export").run()
    assert_clean(at)
    assert any(h.value == "Use it from another program" for h in at.subheader)
    codes = _codes(at)
    # The terminal command carries the workspace and the project folder, so it works when typed (issue 28, item 7);
    # it avoids port 8501 where the app itself listens.
    assert f"-m core serve {run_dir.name} --name tiny --workspace {ws} --port 8511" in codes
    assert f"cd {servers.PROJECT} && " in codes
    assert "curl -F file=@photo.jpg http://127.0.0.1:8511/v1/models/tiny:classify" in codes
    assert 'URL = "http://127.0.0.1:8511/v1/models/tiny:predict"' in codes and 'LABELS = ["blue", "red"]' in codes
    python = next(c.value for c in at.code if c.value.startswith("import base64"))
    assert len(python.splitlines()) <= 11
    compile(python, "client.py", "exec")  # a runnable script, not a sketch
    assert 'docker run --rm -p 8501:8501 -v "$PWD/tiny:/models/tiny" -e MODEL_NAME=tiny tensorflow/serving' in codes
    assert "Authorization" not in codes
    assert any("96×96" in m.value and "blue, red" in m.value for m in at.markdown)
    assert at.button(key="serve.start")
    # The tf-serving export is one of the formats on offer.
    assert "TensorFlow Serving (.zip)" in at.selectbox(key="export.format").options


def test_a_key_adds_the_header_everywhere(ws, make_run):
    make_run("done")
    at = app_test("export").run()
    at.toggle(key="serve.key").set_value(True).run()
    assert_clean(at)
    codes = _codes(at)
    assert "export TL_SERVE_KEY=" in codes
    assert codes.count('-H "Authorization: Bearer $TL_SERVE_KEY"') == 4
    assert '"Authorization": "Bearer " + os.environ["TL_SERVE_KEY"]' in codes


def test_key_toggle_starts_on_when_the_setting_is_set_and_hosted_mode_points_to_the_export(ws, make_run, monkeypatch):
    make_run("done")
    monkeypatch.setenv("TL_SERVE_KEY", "secret")
    monkeypatch.setenv("TL_HOSTED", "1")
    monkeypatch.setattr(_common, "workspace", lambda: ws)  # the run stands in this visitor's own workspace
    at = app_test("export").run()
    assert_clean(at)
    assert at.toggle(key="serve.key").value is True
    assert "-m core serve" not in _codes(at) and not [b for b in at.button if b.key == "serve.start"]
    assert any("cannot start programs" in i.value for i in at.info)
    assert serving.docker_lines("tiny", 224) in _codes(at)


def test_the_server_starts_shows_its_address_and_a_request_that_works_and_stops(ws, make_run, monkeypatch):
    # The page's wiring; core/service/servers.py's own test starts a real server.
    run_dir = make_run("done")
    calls = []
    state = {"state": "none", "run": run_dir.name}
    monkeypatch.setattr(servers, "start", lambda run_id, ws_: calls.append(("start", run_id)) or state)
    monkeypatch.setattr(servers, "status", lambda run_id, ws_: state)
    monkeypatch.setattr(servers, "stop", lambda run_id, ws_: calls.append(("stop", run_id)))
    at = app_test("export").run()
    at.button(key="serve.start").click().run()
    assert calls == [("start", run_dir.name)]

    state.update(state="serving", name="tiny", url="http://127.0.0.1:40123", pid=1, pid_started=1)
    at.run()
    assert_clean(at)
    assert any("Serving **tiny** at http://127.0.0.1:40123" in s.value for s in at.success)
    assert "curl -F file=@photo.jpg http://127.0.0.1:40123/v1/models/tiny:classify" in _codes(at)
    at.button(key="serve.stop").click().run()
    assert calls[-1] == ("stop", run_dir.name)
