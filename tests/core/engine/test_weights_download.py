"""`weights download`: fetch a backbone's weights into Keras's cache while online, checked, never half-written."""

import hashlib
import http.server
import json
import threading

import pytest

from core.cli import main
from core.engine import networks
from core.errors import WeightsUnavailable
from core.spec import backbones, config
from core.spec.backbones import BackboneSpec, WeightsFile

PAYLOAD = b"weights" * 50_000


@pytest.fixture
def server():
    """A loopback HTTP server: /good serves PAYLOAD, anything else 404."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server name
            if self.path.endswith("/good"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _serve_from(monkeypatch, url, file_hash):
    monkeypatch.delenv("TL_OFFLINE", raising=False)
    monkeypatch.setattr(BackboneSpec, "weights_candidates",
                        lambda self, size: [WeightsFile(f"{self.id}_{size}.h5", url, file_hash)])


def test_download_lands_checked_in_the_keras_cache_with_progress(server, monkeypatch, capsys):
    _serve_from(monkeypatch, server + "/good", hashlib.sha256(PAYLOAD).hexdigest())
    spec = backbones.get("mobilenet_v2_0.35")
    seen = []
    path, fetched = networks.download_weights(spec, 128, progress=lambda f, text: seen.append(f))
    assert fetched and path == backbones.keras_models_dir() / "mobilenet_v2_0.35_128.h5"
    assert path.read_bytes() == PAYLOAD and backbones.cached_weights(spec, 128) == path
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 2
    assert networks.download_weights(spec, 128) == (path, False)  # already here: nothing fetched
    assert main(["weights", "list", "mobilenet_v2_0.35", "--size", "128", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"backbone": "mobilenet_v2_0.35", "label": spec.label, "image_size": 128, "ready": True}]


def test_a_damaged_or_missing_file_is_a_sentence_and_leaves_nothing(server, monkeypatch, capsys):
    spec = backbones.get("mobilenet_v2_0.35")
    _serve_from(monkeypatch, server + "/good", "0" * 64)
    with pytest.raises(WeightsUnavailable, match="arrived damaged"):
        networks.download_weights(spec, 128)
    _serve_from(monkeypatch, server + "/missing", None)
    assert main(["weights", "download", "mobilenet_v2_0.35", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "could not be downloaded" in err and "Check the internet connection" in err
    models = backbones.keras_models_dir()
    assert not models.exists() or list(models.iterdir()) == []  # no half file, no temporary file


def test_offline_is_refused_and_the_default_kit_is_what_presets_and_recommender_use(monkeypatch, capsys):
    with pytest.raises(WeightsUnavailable, match="TL_OFFLINE"):
        networks.download_weights(backbones.get("mobilenet_v2_0.35"), 128)
    assert main(["weights", "list", "--json"]) == 0
    listed = {(r["backbone"], r["image_size"]) for r in json.loads(capsys.readouterr().out)}
    assert listed == set(config.offline_kit())
    assert {(p["backbone"], p["image_size"]) for p in config.PRESETS.values()} <= listed


def _hub_server(tmp_path):
    """A loopback server answering any path with a compressed TF Hub model (a folder holding saved_model.pb)."""
    import io
    import tarfile

    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w:gz") as tar:
        info = tarfile.TarInfo("saved_model.pb")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    body = blob.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server name
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/google/yamnet/1"


def test_a_tf_hub_model_of_the_kit_downloads_into_the_workspace_and_counts_as_ready(ws, tmp_path, monkeypatch, capsys):
    import dataclasses

    httpd, url = _hub_server(tmp_path)
    try:
        monkeypatch.setitem(backbones.BACKBONES, "yamnet",
                            dataclasses.replace(backbones.get("yamnet"), hub_handle=url))
        monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "elsewhere"))  # not where this workspace keeps models
        args = ["yamnet", "--workspace", str(ws), "--json"]
        assert main(["weights", "list", *args]) == 0
        assert json.loads(capsys.readouterr().out)[0]["ready"] is False
        monkeypatch.setenv("TL_OFFLINE", "1")
        assert main(["weights", "download", *args]) == 2
        assert "TL_OFFLINE" in capsys.readouterr().err  # offline: a sentence, not "no weights file"
        monkeypatch.delenv("TL_OFFLINE")
        assert main(["weights", "download", *args]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        folder = backbones.hub_module_dir(url, backbones.hub_cache_dir(ws))
        assert row["downloaded"] and row["file"] == str(folder) and (folder / "saved_model.pb").read_bytes() == PAYLOAD
        # A page asks with the workspace, whatever this process's TFHUB_CACHE_DIR says.
        monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "elsewhere"))
        assert backbones.cached_weights(backbones.get("yamnet"), 96, ws) == folder
        assert backbones.cached_weights(backbones.get("yamnet"), 96) is None
        assert main(["weights", "list", *args]) == 0
        assert json.loads(capsys.readouterr().out)[0]["ready"] is True
        assert main(["weights", "download", *args]) == 0
        assert json.loads(capsys.readouterr().out)[0]["downloaded"] is False  # already here
    finally:
        httpd.shutdown()


def test_one_backbone_that_cannot_be_had_does_not_stop_the_kit(server, monkeypatch, capsys):
    _serve_from(monkeypatch, server + "/good", hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setattr(networks, "fetch_hub", lambda spec, cache=None: (_ for _ in ()).throw(
        WeightsUnavailable("The TF Hub model could not be downloaded.")))
    assert main(["weights", "download", "mobilenet_v2_0.35", "yamnet", "--size", "128", "--json"]) == 2
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert rows[0]["downloaded"] is True and rows[1] == {"backbone": "yamnet", "image_size": 128,
                                                         "error": "The TF Hub model could not be downloaded."}
    assert "error: The TF Hub model could not be downloaded." in err
