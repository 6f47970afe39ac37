"""An unlabelled folder (or zip) of images imports as a target dataset, and a run adapts to it."""

import json
import shutil
import zipfile

import pytest

from core import cli
from core.data import domains, health
from core.data.importer import import_path, import_upload
from core.data.samples import generate_shapes_field
from core.engine import training
from core.errors import DatasetError
from core.spec.config import AugmentConfig, RunConfig
from core.store import datasets, runs
from core.store.files import read_json


def _loose_folder(tmp_path, n_per_class=8):
    """Images in odd, nested folders with no meaning (a phone's dump): 3 x n images and a README."""
    src = generate_shapes_field(tmp_path / "gen", per_class=n_per_class, size=40, seed=3)
    out = tmp_path / "phone"
    for i, folder in enumerate(sorted(p for p in src.iterdir() if p.name != "star")):
        dest = out / ("DCIM" if i else "") / f"day{i}"
        dest.mkdir(parents=True)
        for f in folder.iterdir():
            shutil.copy(f, dest / f.name)
    (out / "README.txt").write_text("taken in the field")
    return out


def test_an_unlabelled_folder_imports_as_a_target(ws, tiny, tmp_path, capsys):
    info = import_path(_loose_folder(tmp_path), ws, name="field", role="target")
    assert info["role"] == "target" and info["classes"] == [] and info["counts"] == {}
    assert len(info["unlabeled"]) == 24 and all(rel.startswith("unlabeled/") for rel in info["unlabeled"])
    root = datasets.dataset_path(info["id"], ws)
    assert all((root / rel).is_file() for rel in info["unlabeled"])
    report = health.health_report(datasets.load_dataset(info["id"], ws))
    assert report["images"] == 24 and report["classes"] == 0 and "unlabelled images" in report["note"]
    with pytest.raises(DatasetError, match="only unlabelled images"):
        health.check_trainable(info)

    [notice] = domains.check_target(tiny, info)
    assert "no labels" in notice and "no accuracy on the target domain" in notice
    parts = domains.target_split(tiny, info, seed=1, labeled_per_class=2)
    assert parts["test"] == [] and parts["labeled"] == [] and len(parts["adapt"]) == 24
    assert any("no effect" in n for n in parts["notices"])

    # The CLI: --target, a JSON document naming the role; `dataset show` gives the sentence.
    assert cli.main(["dataset", "import", str(_loose_folder(tmp_path / "again")), "--target", "--json",
                     "--workspace", str(ws)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["role"] == "target" and out["unlabeled"] == 24 and out["classes"] == []
    assert cli.main(["dataset", "show", out["id"], "--workspace", str(ws)]) == 0
    assert "unlabelled images from where the model will be used" in capsys.readouterr().out
    assert cli.main(["dataset", "list", "--workspace", str(ws)]) == 0
    assert f"{out['id']}  24 unlabelled images (a target)" in capsys.readouterr().out


def test_a_zip_imports_as_a_target_and_too_few_images_get_a_sentence(ws, tmp_path):
    folder = _loose_folder(tmp_path)
    archive = tmp_path / "field.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f"wrapper/{f.relative_to(folder)}")
    with open(archive, "rb") as fh:
        info = import_upload(fh, "field.zip", ws, role="target")
    assert info["role"] == "target" and len(info["unlabeled"]) == 24

    few = _loose_folder(tmp_path / "few", n_per_class=6)  # 18 images
    with pytest.raises(DatasetError, match="holds 18 readable image\\(s\\).*at least 20"):
        import_path(few, ws, role="target")
    assert cli.main(["dataset", "import", str(few), "--target", "--workspace", str(ws)]) == 2
    with pytest.raises(DatasetError, match="Unknown dataset role"):
        import_path(few, ws, role="sideways")


def test_a_run_adapts_to_an_unlabelled_target_and_says_there_is_no_target_accuracy(ws, tiny, tmp_path):
    target = import_path(_loose_folder(tmp_path), ws, name="field", role="target")
    cfg = RunConfig(dataset_id=tiny["id"], backbone="small_cnn", weights="none", strategy="adaptive_layers",
                    adapt_loss="coral", image_size=32, epochs=1, batch_size=8, patience=0,
                    augment=AugmentConfig(flip=False, rotate=False), val_fraction=0.2, test_fraction=0.2,
                    target_dataset_id=target["id"]).validate()
    run_dir = runs.create_run(cfg, ws)
    assert training.run(cfg, run_dir)["state"] == "done"
    notices = [e["message"] for e in runs.read_events(run_dir) if e["type"] == "notice"]
    assert any("no accuracy on the target domain is measured" in m for m in notices)
    split = read_json(run_dir / "split.json")["target"]
    assert split["test"] == [] and len(split["adapt"]) == 24
    block = read_json(run_dir / "eval.json")["target"]
    assert "accuracy" not in block and "no labels" in block["note"]
