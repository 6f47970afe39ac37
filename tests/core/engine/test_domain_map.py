"""The before / after adaptation picture: the overlap figure follows the data, the sentence follows the
figures, and a run with a source-only baseline gets both maps (core and the Predictions page)."""

import json

import numpy as np

from core import cli
from core.data.importer import import_path
from core.data.samples import generate_shapes_field
from core.engine import domain_map, training
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs
from tests.pages.conftest import app_test, plotly_charts


def test_the_overlap_figure_follows_the_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 10)), rng.normal(size=(60, 10))
    is_target = np.array([False] * 60 + [True] * 60)
    same = domain_map.overlap(np.concatenate([a, b]), is_target, seed=1)
    apart = domain_map.overlap(np.concatenate([a, b + 3.0]), is_target, seed=1)
    assert same["domain_accuracy"] < 0.7 and apart["domain_accuracy"] > 0.95
    assert same["centroid_ratio"] < 0.5 < 2.0 < apart["centroid_ratio"]
    assert "now overlap more" in domain_map.reading(same, apart)
    assert "overlap less than before" in domain_map.reading(apart, same)
    assert "about as much as before" in domain_map.reading(same, same)
    assert f"{apart['domain_accuracy']:.0%}" in domain_map.reading(same, apart)
    assert "still sit apart" in domain_map.reading(apart) and "almost completely" in domain_map.reading(same)
    # With the measured target accuracies the sentence agrees with them (issue 28, item 4).
    rose = domain_map.reading(apart, same, (0.244, 0.467))
    assert "overlap less than before, yet the accuracy on them went from 24.4% without adaptation to 46.7% with it, " \
           "so adaptation helped where it counts" in rose and "did not line them up" not in rose
    assert "so adaptation did not help here" in domain_map.reading(same, apart, (0.5, 0.5))


def test_a_run_and_its_baseline_get_the_before_after_maps(ws, tiny, tmp_path, capsys):
    src = generate_shapes_field(tmp_path / "field", per_class=8, size=40, seed=2)
    for f in (src / "star").iterdir():  # `tiny` has no stars
        f.unlink()
    (src / "star").rmdir()
    target = import_path(src, ws, name="field")
    cfg = RunConfig(dataset_id=tiny["id"], backbone="small_cnn", weights="none", strategy="adaptive_layers",
                    adapt_loss="coral", image_size=32, epochs=1, batch_size=8, patience=0,
                    augment=AugmentConfig(flip=False, rotate=False), val_fraction=0.2, test_fraction=0.2,
                    target_dataset_id=target["id"], compare_source_only=True).validate()
    run_dir = runs.create_run(cfg, ws)
    result = training.train_and_compare(cfg, run_dir)
    baseline_dir = runs.run_path(result["source_only_run"], ws)
    after = domain_map.compute_domain_map(run_dir)
    before = domain_map.compute_domain_map(baseline_dir)
    assert after["layer"] == "the adaptation layer" and after["target_part"] == "test"
    assert after["files"] == before["files"]  # the same images in both pictures
    assert after["domains"].count("target") == after["n_target"] == 7  # 30% of 24 held-out target images
    assert len(after["points"]) == after["n_source"] + after["n_target"]
    assert 0.0 <= after["domain_accuracy"] <= 1.0 and after["centroid_ratio"] >= 0.0
    assert domain_map.load_domain_map(run_dir) == after
    assert cli.main(["evaluate", run_dir.name, "--domain-map", "--json", "--workspace", str(ws)]) == 0
    out = json.loads(capsys.readouterr().out)["domain_map"]
    status = runs.read_status(run_dir)
    measured = (status["source_only_target_accuracy"], status["target_accuracy"])
    assert out["reading"] == domain_map.reading(after, before, measured)
    assert out["before"]["run"] == baseline_dir.name and out["after"]["domain_accuracy"] == after["domain_accuracy"]

    at = app_test("predictions")
    at.session_state["pred.run"] = run_dir.name
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # a 1-epoch model may be told honestly that it guesses; no other error is shown
    assert all("about what guessing gets" in e.value for e in at.error), [e.value for e in at.error]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in plotly_charts(at)]
    assert "Before adaptation" in titles and "After adaptation" in titles  # short: they fit above the maps
    assert any(domain_map.reading(after, before, measured) == i.value for i in at.info)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Target accuracy without adaptation"] == f"{measured[0]:.1%}"
    assert shown["Target accuracy with adaptation"] == f"{measured[1]:.1%}"

