"""The recommender counts the images a run will train on: with a predefined split, its training images only."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from core.cli import main
from core.data import importer, splits
from core.spec import strategies


def _predefined(tmp_path, train: int = 12, test: int = 100):
    src = tmp_path / "split"
    for part, n in (("train", train), ("test", test)):
        for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            folder = src / part / label
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(folder / f"{i}.png")
    return src


def test_a_predefined_split_counts_its_training_images_only(ws, tmp_path, capsys):
    info = importer.import_path(_predefined(tmp_path), ws, name="split")
    assert info["counts"] == {"blue": 112, "red": 112}
    # No val/ folder: 15% of the 12 training images validate, so 10 per class train.
    assert splits.train_counts(info) == {"blue": 10, "red": 10}
    rec = strategies.recommend(splits.train_counts(info), False)
    assert rec.strategy == "feature_extraction"  # 10 to train on is very little, whatever the 100 test images
    assert "10 training images" in rec.reason and "112" not in rec.reason

    assert main(["recommend", "--dataset", info["id"], "--everyday", "no", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == rec.reason


def test_every_recommendation_says_how_many_images_it_counted():
    for counts, everyday in (({"a": 150, "b": 150}, False), ({"a": 60, "b": 60}, False), ({"a": 400, "b": 400}, True),
                             ({"a": 60, "b": 70}, True), ({"a": 5, "b": 70}, None)):
        rec = strategies.recommend(counts, everyday)
        assert f"{min(counts.values())} " in rec.reason and "training images" in rec.reason, rec.reason
