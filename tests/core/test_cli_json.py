"""`--json` prints exactly one JSON document on stdout, even when a library prints while the command runs.

The case that broke scripts: weights absent, so Keras's downloader printed "Downloading data from ..."
on stdout before the JSON. Here every download goes to a closed local port (nothing leaves the
machine), so the downloader prints and fails, as it does on a computer without internet.
"""

import json

import pytest

from core.cli import main
from core.spec import backbones
from core.spec.backbones import BackboneSpec, WeightsFile

DEAD = "http://127.0.0.1:9/"  # the discard port: connection refused at once


@pytest.fixture
def downloads_fail(monkeypatch):
    """Online (TL_OFFLINE unset), but every weights file lives at an address that refuses connections."""
    monkeypatch.delenv("TL_OFFLINE", raising=False)
    candidates, tops = BackboneSpec.weights_candidates, BackboneSpec.top_weights_files
    monkeypatch.setattr(BackboneSpec, "weights_candidates",
                        lambda self, size: [WeightsFile(f.name, DEAD + f.name) for f in candidates(self, size)])
    monkeypatch.setattr(BackboneSpec, "top_weights_files",
                        lambda self, size: [WeightsFile(f.name, DEAD + f.name) for f in tops(self, size)])
    monkeypatch.setattr(backbones, "CLASS_INDEX", WeightsFile(backbones.CLASS_INDEX.name, DEAD + "index.json"))


def _json(capsys, *argv):
    """Run a --json command; stdout must be one JSON document on success and empty on failure."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    if code == 0:
        return json.loads(out), err  # raises if anything else shares stdout with the document
    assert out == "", f"{argv}: a failed command printed on stdout: {out!r}"
    return None, err


def test_every_json_command_prints_one_document(ws, capsys, tmp_path, tiny_source, downloads_fail):
    seen_download = []
    info, _ = _json(capsys, "dataset", "import", str(tiny_source))
    dataset_id = info["id"]
    for argv in (["dataset", "list"], ["dataset", "show", dataset_id], ["backbones"], ["backbones", "--hub"],
                 ["backbones", "--runs"], ["strategies"], ["recommend", "--dataset", dataset_id], ["runs"],
                 ["sweep"]):
        data, _ = _json(capsys, *argv)
        assert data is not None, argv
    cfg, _ = _json(capsys, "config", "--dataset", dataset_id, "--backbone", "mobilenet_v1_0.25", "--weights", "imagenet",
                   "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--no-augment")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    result, err = _json(capsys, "train", str(path), "--quiet")
    seen_download.append("Downloading data from" in err)
    run_id = result["id"] if result else None
    if run_id is None:  # the weights could not be had: the run is refused with a sentence, stdout empty
        assert "weights" in err
        cfg["weights"] = "none"
        path.write_text(json.dumps(cfg))
        result, err = _json(capsys, "train", str(path), "--quiet")
        run_id = result["id"]
    for argv in (["evaluate", run_id], ["predict", run_id, str(next(tiny_source.rglob("*.png")))],
                 ["export", run_id, "--format", "labels"], ["resume", run_id]):
        _json(capsys, *argv)
    _, err = _json(capsys, "sees", "mobilenet_v1_0.25", str(next(tiny_source.rglob("*.png"))))
    seen_download.append("Downloading data from" in err)
    # The library really printed during these commands, and it went to stderr.
    assert any(seen_download)
