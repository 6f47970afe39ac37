"""Dataset records and drafts: found, listed, marked, deleted; a draft survives a reload and nothing else."""

import dataclasses

import pytest

from core.errors import DatasetError
from core.store import datasets, drafts, runs
from core.store.files import write_json
from tests.core.store.helpers import config


def _dataset(ws, dataset_id, classes, created):
    record = {"id": dataset_id, "name": dataset_id.split("-")[0], "classes": classes, "created": created,
              "images": {c: [f"{c}/{i}.png" for i in range(8)] for c in classes}}
    write_json(datasets.datasets_root(ws) / dataset_id / "dataset.json", record)
    return record


def test_dataset_records_list_newest_first_and_mark_targets(tmp_path):
    _dataset(tmp_path, "cats-0123abcd", ["cat", "dog"], 1.0)
    _dataset(tmp_path, "street-89abcdef", [], 2.0)
    (datasets.datasets_root(tmp_path) / "not-an-id").mkdir()
    assert [d["id"] for d in datasets.list_datasets(tmp_path)] == ["street-89abcdef", "cats-0123abcd"]
    assert datasets.is_target(datasets.load_dataset("street-89abcdef", tmp_path))
    assert datasets.mark_target("cats-0123abcd", tmp_path, True)["role"] == "target"
    assert "role" not in datasets.mark_target("cats-0123abcd", tmp_path, False)
    with pytest.raises(DatasetError, match="has no labels, so it can only be"):
        datasets.mark_target("street-89abcdef", tmp_path, False)
    thumbs = list(datasets.iter_thumbnails(datasets.load_dataset("cats-0123abcd", tmp_path), tmp_path, per_class=2))
    assert [(label, p.name) for label, p in thumbs] == [("cat", "0.png"), ("cat", "1.png"), ("dog", "0.png"),
                                                        ("dog", "1.png")]


def test_dataset_lookup_refuses_unknown_and_malformed_ids_and_deletes(tmp_path):
    _dataset(tmp_path, "cats-0123abcd", ["cat"], 1.0)
    with pytest.raises(DatasetError, match="There is no dataset '../cats-0123abcd'"):
        datasets.dataset_path("../cats-0123abcd", tmp_path)
    run_dir = runs.create_run(dataclasses.replace(config(), dataset_id="cats-0123abcd"), tmp_path)
    runs.create_run(config(), tmp_path)
    assert datasets.runs_using("cats-0123abcd", tmp_path) == [run_dir.name]
    datasets.delete_dataset("cats-0123abcd", tmp_path)
    assert datasets.list_datasets(tmp_path) == []
    with pytest.raises(DatasetError):
        datasets.load_dataset("cats-0123abcd", tmp_path)


def test_drafts_survive_a_reload_and_refuse_odd_names(tmp_path):
    assert drafts.load(tmp_path, "model") is None
    drafts.save(tmp_path, "model", {"epochs": 5})
    path = tmp_path / drafts.DRAFTS / "model.json"
    stamp = path.stat().st_mtime_ns
    drafts.save(tmp_path, "model", {"epochs": 5})  # unchanged: not rewritten
    assert path.stat().st_mtime_ns == stamp and drafts.load(tmp_path, "model") == {"epochs": 5}
    path.write_text("[1, 2")  # unreadable reads as no draft
    assert drafts.load(tmp_path, "model") is None
    drafts.discard(tmp_path, "model")
    drafts.discard(tmp_path, "model")
    assert not path.exists()
    with pytest.raises(ValueError, match="lower-case words"):
        drafts.save(tmp_path, "../escape", {})
