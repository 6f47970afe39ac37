"""The model server: TensorFlow Serving's REST API over a run, answering exactly as `python -m core predict`.

One small CNN is trained once for the module (3 classes x 12 generated images, 32 px, a few
seconds); the requests go through FastAPI's TestClient, and once through a real server on a free
local port (in a thread, and as `python -m core serve` in its own process).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core import cli, settings
from core.data.images import load_image_array
from core.data.limits import ImportLimits
from core.errors import ServingError
from core.ship import export, serving
from tests.conftest import ROOT, trained_small_cnn

_TRAINED: dict[str, Path] = {}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_source) -> Path:
    """A finished small_cnn run on the tiny dataset (dataset name 'tiny', so it is served as 'tiny')."""
    return trained_small_cnn(tmp_path_factory.mktemp("serve-ws"), tiny_source)


@pytest.fixture(scope="module")
def served(run_dir) -> serving.ServedModel:
    return serving.load(run_dir)


@pytest.fixture(scope="module")
def client(served) -> TestClient:
    return TestClient(serving.create_app([served]))


@pytest.fixture(scope="module")
def photos(tiny_source) -> list[Path]:
    """One image of each class, plus a JPEG (the CLI and the server must decode it the same way)."""
    chosen = [sorted((tiny_source / c).iterdir())[0] for c in sorted(p.name for p in tiny_source.iterdir())]
    jpeg = chosen[0].parent.parent / "photo.jpg"
    Image.open(chosen[1]).convert("RGB").resize((57, 43)).save(jpeg, quality=90)
    return [*chosen, jpeg]


def _cli_probabilities(run_dir: Path, photos: list[Path], capsys) -> np.ndarray:
    """`python -m core predict --json` for every class, as probabilities in label order."""
    classes = export.classes(run_dir)
    assert cli.main(["predict", run_dir.name, *map(str, photos), "--top-k", str(len(classes)), "--json",
                     "--workspace", str(run_dir.parent.parent)]) == 0
    rows = json.loads(capsys.readouterr().out)
    return np.array([[next(t["probability"] for t in r["top"] if t["class"] == c) for c in classes] for r in rows])


def _b64(path: Path) -> dict[str, str]:
    return {"b64": base64.b64encode(path.read_bytes()).decode()}


def test_status_metadata_and_listing(client, served, run_dir):
    assert served.name == "tiny" and serving.default_name(run_dir) == "tiny"
    status = client.get("/v1/models/tiny")
    assert status.status_code == 200
    assert status.json() == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                       "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get("/v1/models/tiny/versions/1").json() == status.json()
    meta = client.get("/v1/models/tiny/metadata").json()
    assert meta["labels"] == export.classes(run_dir) and meta["image_size"] == 32
    assert meta["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert [d["size"] for d in signature["inputs"]["image"]["tensor_shape"]["dim"]] == ["-1", "32", "32", "3"]
    assert [d["size"] for d in signature["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "3"]
    assert client.get("/v1/models").json()["models"][0]["name"] == "tiny"


def test_predict_with_pixel_arrays_and_b64_files_equals_cli_predict(client, served, run_dir, photos, capsys):
    expected = _cli_probabilities(run_dir, photos, capsys)
    by_file = client.post("/v1/models/tiny:predict", json={"instances": [_b64(p) for p in photos]})
    assert by_file.status_code == 200, by_file.text
    assert np.abs(np.array(by_file.json()["predictions"]) - expected).max() < 1e-5
    # The same images as pixel arrays (decoded as predict decodes them), row and columnar formats.
    pixels = [load_image_array(p.read_bytes(), 32).tolist() for p in photos]
    rows = client.post("/v1/models/tiny:predict", json={"instances": pixels}).json()["predictions"]
    assert np.abs(np.array(rows) - expected).max() < 1e-5
    named = client.post("/v1/models/tiny/versions/1:predict", json={"inputs": {"image": pixels[:2]}}).json()
    assert np.abs(np.array(named["outputs"]) - expected[:2]).max() < 1e-5
    assert np.allclose(np.array(rows).sum(axis=1), 1, atol=1e-5)


def test_classify_takes_a_multipart_upload_and_equals_predict(client, run_dir, photos, capsys):
    expected = _cli_probabilities(run_dir, photos, capsys)
    classes = export.classes(run_dir)
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p in photos]
    answer = client.post("/v1/models/tiny:classify", files=files)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["file"] for r in results] == [p.name for p in photos]
    for row, probs in zip(results, expected):
        assert [t["class"] for t in row["top"]] == [classes[i] for i in np.argsort(probs)[::-1]]
        got = {t["class"]: t["probability"] for t in row["top"]}
        assert np.abs(np.array([got[c] for c in classes]) - probs).max() < 1e-5
        assert row["prediction"] == classes[int(probs.argmax())]
    top1 = client.post("/v1/models/tiny:classify?top_k=1", files=files[:1]).json()["results"][0]["top"]
    assert len(top1) == 1


def _png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


GOOD_PIXELS = np.full((32, 32, 3), 100.0).tolist()
# (how, request arguments, status, words the sentence must hold)
BAD_REQUESTS = [
    ("bad JSON", {"content": b'{"instances": [1, 2', "headers": {"Content-Type": "application/json"}}, 400,
     "not valid JSON"),
    ("not an object", {"json": [1, 2, 3]}, 400, "must be a JSON object"),
    ("unknown field", {"json": {"instances": [GOOD_PIXELS], "extra": 1}}, 400, "field 'extra'"),
    ("no instances", {"json": {"signature_name": "serving_default"}}, 400, '{"instances": [...]}'),
    ("empty instances", {"json": {"instances": []}}, 400, "non-empty list"),
    ("other signature", {"json": {"signature_name": "other", "instances": [GOOD_PIXELS]}}, 400, "one signature"),
    ("bad base64", {"json": {"instances": [{"b64": "not base64!!"}]}}, 400, "not valid base64"),
    ("not an image", {"json": {"instances": [{"b64": base64.b64encode(b"hello, not a picture").decode()}]}}, 400,
     "not a readable image"),
    ("wrong shape", {"json": {"instances": [np.zeros((16, 16, 3)).tolist()]}}, 400, "has shape 16 x 16 x 3"),
    ("ragged", {"json": {"instances": [[[1, 2, 3], [4, 5]]]}}, 400, "neither an array of numbers"),
    ("strings", {"json": {"instances": [[["a", "b", "c"]]]}}, 400, "neither an array of numbers"),
    ("out of range", {"json": {"instances": [np.full((32, 32, 3), 300.0).tolist()]}}, 400, "outside 0-255"),
    ("too many", {"json": {"instances": [GOOD_PIXELS] * (serving.MAX_INSTANCES + 1)}}, 400, "at most 64 images"),
    ("odd object", {"json": {"instances": [{"url": "http://example.com/x.jpg"}]}}, 400, "not {\"b64\""),
]


@pytest.mark.parametrize("how, request_args, code, words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_each_bad_predict_request_gets_its_status_and_a_sentence(client, how, request_args, code, words):
    answer = client.post("/v1/models/tiny:predict", **request_args)
    assert answer.status_code == code
    error = answer.json()["error"]
    assert words in error and error.endswith(".") and "Traceback" not in error


def test_bad_classify_requests_and_unknown_addresses(client):
    def check(answer, code, words):
        assert answer.status_code == code, answer.text
        error = answer.json()["error"]
        assert words in error and error.endswith("."), error

    check(client.post("/v1/models/tiny:classify", files=[("file", ("notes.txt", b"plain text", "text/plain"))]),
          400, "'notes.txt' was skipped: not a readable image")
    check(client.post("/v1/models/tiny:classify", json={"instances": []}), 400, "takes a multipart upload")
    check(client.post("/v1/models/tiny:classify", data={"field": "value"}), 400, "curl -F file=@photo.jpg")
    check(client.post("/v1/models/tiny:classify?top_k=9", files=[("file", ("a.png", _png(8), "image/png"))]),
          400, "top_k must be between 1 and 3")
    check(client.post("/v1/models/tiny:classify?top_k=many", files=[("file", ("a.png", _png(8), "image/png"))]),
          400, "'top_k' is wrong")
    check(client.get("/v1/models/nope"), 404, "no model 'nope' here; this server has 'tiny'")
    check(client.post("/v1/models/nope:predict", json={"instances": [GOOD_PIXELS]}), 404, "no model 'nope'")
    check(client.get("/v1/models/tiny/versions/2"), 404, "only version 1")
    check(client.post("/v1/models/tiny:regress", json={}), 404, "NAME:predict")
    check(client.get("/somewhere/else"), 404, "the models are at /v1/models/NAME")
    check(client.delete("/v1/models/tiny"), 405, "DELETE is not allowed")


def test_classify_answers_the_good_files_and_marks_the_bad_one(client, photos):
    files = [("file", (photos[0].name, photos[0].read_bytes(), "image/png")),
             ("file", ("notes.txt", b"plain text", "text/plain")),
             ("file", (photos[1].name, photos[1].read_bytes(), "image/png"))]
    answer = client.post("/v1/models/tiny:classify", files=files)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["file"] for r in results] == [photos[0].name, "notes.txt", photos[1].name]
    assert "prediction" in results[0] and "prediction" in results[2]
    assert "not a readable image" in results[1]["error"] and "prediction" not in results[1]


def test_a_caller_without_the_key_learns_no_model_names(served):
    locked = TestClient(serving.create_app([served], key="s3cret"))
    for answer in (locked.get("/somewhere/else"), locked.get("/v1/other/metadata/extra"),
                   locked.get("/v1/models/nope", headers={"Authorization": "Bearer wrong"})):
        assert answer.status_code in (401, 404)
        assert "tiny" not in answer.text
    named = locked.get("/somewhere/else", headers={"Authorization": "Bearer s3cret"})
    assert named.status_code == 404 and "'tiny'" in named.json()["error"]
    assert "'tiny'" in locked.get("/v1/models/nope", headers={"Authorization": "Bearer s3cret"}).json()["error"]


def test_body_and_pixel_caps_come_from_the_import_limits(served, monkeypatch):
    small = TestClient(serving.create_app([served], limits=ImportLimits(max_file_bytes=4000, max_pixels=32 * 32)))
    big = {"instances": [{"b64": base64.b64encode(b"x" * 6000).decode()}]}
    answer = small.post("/v1/models/tiny:predict", json=big)
    assert answer.status_code == 413 and "larger than 4 KB" in answer.json()["error"]

    def chunked():  # no Content-Length: the body is counted as it arrives
        yield json.dumps(big).encode()

    answer = small.post("/v1/models/tiny:predict", content=chunked(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    answer = small.post("/v1/models/tiny:predict", json={"instances": [{"b64": base64.b64encode(_png(40)).decode()}]})
    assert answer.status_code == 400 and "larger than 1,024 pixels" in answer.json()["error"]
    assert small.post("/v1/models/tiny:predict", json={"instances": [
        {"b64": base64.b64encode(_png(30)).decode()}]}).status_code == 200
    # The settings reach the app when it is made without explicit limits.
    monkeypatch.setenv("TL_IMPORT_MAX_PIXELS", "100")
    answer = TestClient(serving.create_app([served])).post(
        "/v1/models/tiny:classify", files=[("file", ("a.png", _png(20), "image/png"))])
    assert answer.status_code == 400 and "larger than 100 pixels" in answer.json()["error"]


def test_the_api_key_is_required_when_set_and_accepted_when_sent(served, monkeypatch):
    monkeypatch.setenv("TL_SERVE_KEY", "  s3cret ")
    assert settings.serve_key() == "s3cret"
    locked = TestClient(serving.create_app([served], key=settings.serve_key()))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        answer = locked.get("/v1/models/tiny", headers=headers)
        assert answer.status_code == 401 and "Authorization: Bearer KEY" in answer.json()["error"]
        assert answer.headers["www-authenticate"] == "Bearer"
    assert locked.post("/v1/models/tiny:predict", json={"instances": [GOOD_PIXELS]}).status_code == 401
    ok = {"Authorization": "Bearer s3cret"}
    assert locked.get("/v1/models/tiny", headers=ok).status_code == 200
    assert locked.post("/v1/models/tiny:predict", json={"instances": [GOOD_PIXELS]}, headers=ok).status_code == 200
    monkeypatch.setenv("TL_SERVE_KEY", "")
    assert settings.serve_key() is None


def test_several_runs_need_names_of_their_own(run_dir, served):
    with pytest.raises(ServingError, match="Two runs would be served as 'tiny'"):
        serving.load_all([(run_dir, None), (run_dir, None)])
    with pytest.raises(ServingError, match="cannot be part of an address"):
        serving.load(run_dir, "a:b")
    two = TestClient(serving.create_app([served, serving.ServedModel("other", run_dir, served.classes, 32,
                                                                      served.model)]))
    assert two.get("/v1/models/other").status_code == 200 and two.get("/v1/models/tiny").status_code == 200


def test_an_unfinished_run_is_not_served(run_dir, tmp_path):
    copy = tmp_path / "runs" / run_dir.name
    copy.mkdir(parents=True)
    (copy / "config.json").write_text((run_dir / "config.json").read_text())
    (copy / "status.json").write_text(json.dumps({"state": "running"}))
    with pytest.raises(ServingError, match="no finished model to serve yet .state: running"):
        serving.load(copy)


def test_a_real_server_on_a_free_local_port(served, photos):
    import httpx2

    with serving.background([served], port=0) as url:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        with httpx2.Client(base_url=url, timeout=30) as http:
            assert http.get("/v1/models/tiny").json()["model_version_status"][0]["state"] == "AVAILABLE"
            answer = http.post("/v1/models/tiny:classify", files={"file": (photos[0].name, photos[0].read_bytes())})
            assert answer.status_code == 200 and answer.json()["results"][0]["file"] == photos[0].name
            assert http.post("/v1/models/tiny:predict", content=b"{").status_code == 400


def test_cli_serve_runs_the_server_and_prints_its_addresses(run_dir, photos):
    import httpx2

    env = {**os.environ, "TL_SERVE_KEY": "k3y", "TL_WORKSPACE": str(run_dir.parent.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", run_dir.name, "--name", "shapes", "--port", "0",
                             "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        lines = [first]
        while not lines[-1].startswith("}"):
            lines.append(proc.stdout.readline())
        info = json.loads("".join(lines))
        assert info["api_key"] is True and info["models"][0]["name"] == "shapes"
        with httpx2.Client(timeout=30, headers={"Authorization": "Bearer k3y"}) as http:
            answer = http.post(info["models"][0]["predict"], json={"instances": [_b64(photos[0])]})
            assert answer.status_code == 200 and len(answer.json()["predictions"][0]) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert cli.main(["serve", run_dir.name, "--name", "a", "--name", "b",
                     "--workspace", str(run_dir.parent.parent)]) == 2


def test_cli_serve_pairs_each_run_with_its_name(run_dir, monkeypatch, capsys):
    started = {}

    def fake_server(models, host, port, key, ready):
        started.update(names=[m.name for m in models], host=host, port=port, key=key)
        ready(f"http://{host}:{port}")

    monkeypatch.setattr(serving, "run_server", fake_server)
    monkeypatch.delenv("TL_SERVE_KEY", raising=False)
    ws = str(run_dir.parent.parent)
    assert cli.main(["serve", run_dir.name, "--run", run_dir.name, "--name", "first", "--name", "second",
                     "--host", "0.0.0.0", "--port", "9000", "--json", "--workspace", ws]) == 0
    out = capsys.readouterr()
    assert started == {"names": ["first", "second"], "host": "0.0.0.0", "port": 9000, "key": None}
    info = json.loads(out.out)
    assert [m["classify"] for m in info["models"]] == ["http://0.0.0.0:9000/v1/models/first:classify",
                                                       "http://0.0.0.0:9000/v1/models/second:classify"]
    assert "every computer that can reach this one" in out.err and "set TL_SERVE_KEY" in out.err
    # Two runs under the default name would collide: a sentence, exit 2.
    assert cli.main(["serve", run_dir.name, "--run", run_dir.name, "--workspace", ws]) == 2
    assert "give each its own name with --name" in capsys.readouterr().err


def test_tf_serving_export_loads_and_gives_the_same_probabilities(run_dir, served, photos, tmp_path):
    import tensorflow as tf

    path = export.export(run_dir, "tf-serving")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
    assert "tf_serving/tiny/1/saved_model.pb" in names and "tf_serving/labels.txt" in names
    assert any(n.startswith("tf_serving/tiny/1/variables/") for n in names)
    readme = (tmp_path / "tf_serving" / "README.md").read_text()
    assert 'docker run --rm -p 8501:8501 -v "$PWD/tiny:/models/tiny" -e MODEL_NAME=tiny tensorflow/serving' in readme
    assert "curl -H 'Content-Type: application/json' -d @request.json http://localhost:8501/v1/models/tiny:predict" \
        in readme
    # What tensorflow/serving looks for: the 'serve' tag and a predict signature named serving_default.
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((tmp_path / "tf_serving" / "tiny" / "1" / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0]
    assert list(graph.meta_info_def.tags) == ["serve"]
    assert graph.signature_def["serving_default"].method_name == "tensorflow/serving/predict"
    assert list(graph.signature_def["serving_default"].inputs) == ["image"]
    signature = tf.saved_model.load(str(tmp_path / "tf_serving" / "tiny" / "1")).signatures["serving_default"]
    pixels = np.stack([load_image_array(p.read_bytes(), 32) for p in photos])
    probs = signature(image=tf.constant(pixels))["probabilities"].numpy()
    assert np.abs(probs - served.probabilities(pixels)).max() < 1e-5
    # request.json is a ready :predict body, and the README names its answer.
    request = json.loads((tmp_path / "tf_serving" / "request.json").read_text())
    answer = signature(image=tf.constant(request["instances"], tf.float32))["probabilities"].numpy()[0]
    assert f"answers **{served.classes[int(answer.argmax())]} ({answer.max():.3f})** first" in readme
    assert TestClient(serving.create_app([served])).post("/v1/models/tiny:predict", json=request).status_code == 200
