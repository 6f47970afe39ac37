import json
import subprocess
import sys

import pytest

from core.cli import main
from core.data.importer import import_path
from core.data.samples import generate_shapes
from tests.conftest import ROOT


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_config_train_evaluate_predict(ws, capsys, tmp_path, tiny_source):
    code, out, _ = _run(capsys, "dataset", "import", str(tiny_source), "--json")
    assert code == 0
    dataset_id = json.loads(out)["id"]
    code, out, err = _run(capsys, "config", "--dataset", dataset_id, "--preset", "quick", "--backbone", "mobilenet_v1_0.25",
                          "--weights", "none", "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--no-augment")
    assert code == 0, err
    cfg = json.loads(out)
    assert cfg["backbone"] == "mobilenet_v1_0.25" and cfg["epochs"] == 1 and not any(cfg["augment"].values())
    path = tmp_path / "config.json"
    path.write_text(out)
    code, out, err = _run(capsys, "train", str(path), "--json")
    assert code == 0, err
    result = json.loads(out)
    run_id = result["id"]
    assert result["state"] == "done" and 0.0 <= result["test_accuracy"] <= 1.0
    assert "phase 1/1: head" in err
    code, out, _ = _run(capsys, "evaluate", run_id, "--json")
    assert code == 0 and json.loads(out)["accuracy"] == result["test_accuracy"]
    image = next(tiny_source.rglob("*.png"))
    code, out, _ = _run(capsys, "predict", run_id, str(image), "--json")
    answer = json.loads(out)[0]
    assert code == 0 and answer["prediction"] in ("circle", "square", "triangle")
    assert abs(sum(t["probability"] for t in answer["top"]) - 1.0) < 1e-3
    code, out, _ = _run(capsys, "runs", "--json")
    assert json.loads(out)[0]["id"] == run_id


@pytest.mark.parametrize(
    "argv, message",
    [
        (["config", "--dataset", "nope-12345678"], "There is no dataset 'nope-12345678'"),
        (["evaluate", "20200101-000000-000000000000"], "There is no run"),
        (["evaluate", "../../etc"], "There is no run"),
        (["train", "missing.json"], "does not exist"),
        (["dataset", "import", "nowhere"], "does not exist"),
        (["serve", "20200101-000000-000000000000", "--port", "70000"], "is not a port number"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(ws, capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_config_value_names_allowed_values(ws, capsys, tiny):
    code, _, err = _run(capsys, "config", "--dataset", tiny["id"], "--backbone", "vgg99")
    assert code == 2 and "allowed values: mobilenet_v1_0.25" in err
    code, _, err = _run(capsys, "config", "--dataset", tiny["id"], "--strategy", "from_scratch", "--weights", "imagenet")
    assert code == 2 and "set weights to 'none'" in err


def test_from_scratch_strategy_gets_random_weights(ws, capsys, tiny):
    code, out, _ = _run(capsys, "config", "--dataset", tiny["id"], "--strategy", "from_scratch")
    assert code == 0 and json.loads(out)["weights"] == "none"


def test_training_refuses_classes_under_ten_images(ws, capsys, tmp_path):

    info = import_path(generate_shapes(tmp_path / "few", per_class=4, size=32), ws)
    code, out, _ = _run(capsys, "config", "--dataset", info["id"])
    (tmp_path / "c.json").write_text(out)
    code, _, err = _run(capsys, "train", str(tmp_path / "c.json"))
    assert code == 2 and "add at least 10 images" in err


def test_listings(capsys):
    code, out, _ = _run(capsys, "backbones", "--json")
    rows = json.loads(out)
    assert code == 0 and {"mobilenet_v1_0.25", "mobilenet_v2_1.4", "mobilenet_v3_large", "efficientnet_b0", "resnet50"} <= {r["id"] for r in rows}
    code, out, _ = _run(capsys, "strategies", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)][0] == "feature_extraction"


def test_real_process_exit_codes_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "core", "config", "--dataset", "nope-12345678", "--workspace", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: There is no dataset")
    proc = subprocess.run([sys.executable, "-m", "core", "frobnicate"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
