import math

import numpy as np
import pytest

from core.engine import lrfind
from core.errors import ConfigError
from core.spec.config import AugmentConfig, RunConfig

NO_AUG = AugmentConfig(flip=False, rotate=False)


def test_valley_on_a_small_curve_by_hand():
    # Longest strictly decreasing run: indices 0..5 (6 points), so lds[5] = 6 and fastai's start is
    # 5 - 6 = -1; a third of the stretch is 2, so the index is -1 + 2 + int(2 / 2) = 2.
    assert lrfind.valley_index([3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 2.0, 4.0]) == 2


def test_suggestion_on_a_synthetic_curve_equals_the_hand_computed_valley():
    lrs = lrfind.rates(1e-7, 1.0, 100)
    flat = [2.0] * 30                                   # 0..29: nothing learns yet
    falling = list(np.linspace(1.9, 0.1, 40))           # 30..69: the valley
    rising = list(np.linspace(2.5, 9.0, 30))            # 70..99: the rate is too high
    curve = flat + falling + rising
    # The search window skips the first tenth and the last five: indices 10..94 (window 0..84).
    # Longest decreasing subsequence: one flat point + the 40 falling ones = 41, ending at 69
    # (window 59); start = 59 - 41 = 18; a third is 41 / 3 = 13.67, so the window index is
    # 18 + 13 + 6 = 37, the curve's index 47.
    rate, index = lrfind.suggest(lrs, curve)
    assert index == 47
    assert rate == pytest.approx(1e-7 * (1e7) ** (47 / 99))


def test_rates_grow_exponentially_and_smoothing_is_debiased():
    r = lrfind.rates(1e-7, 1.0, 100)
    assert r[0] == pytest.approx(1e-7) and r[-1] == pytest.approx(1.0)
    assert np.allclose(r[1:] / r[:-1], r[1] / r[0])
    assert lrfind.smooth([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])  # a constant stays itself


def test_finder_on_cached_features(tiny, ws):
    cfg = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32,
                    batch_size=4, augment=NO_AUG, val_fraction=0.2, test_fraction=0.2).validate()
    out = lrfind.find(cfg, ws, num_iter=40)
    assert out["on_features"] is True
    assert 2 <= out["batches"] <= 40 and len(out["rates"]) == len(out["losses"]) == out["batches"]
    assert out["rates"][0] == pytest.approx(1e-7)
    low, high = 1e-6, 1.0
    assert low <= out["suggestion"] <= high
    finite = [v for v in out["smoothed"] if math.isfinite(v)]
    if out["stopped_early"]:
        assert not math.isfinite(out["smoothed"][-1]) or out["smoothed"][-1] > 4 * min(finite[:-1])
    assert list((ws / "cache" / "features").glob("*.npz"))  # features cached for the runs that follow
    assert not (ws / "runs").exists()  # the finder writes no run


def test_finder_refuses_too_few_batches(tiny, ws):
    cfg = RunConfig(dataset_id=tiny["id"], backbone="mobilenet_v1_0.25", weights="none", image_size=32,
                    augment=NO_AUG).validate()
    with pytest.raises(ConfigError):
        lrfind.find(cfg, ws, num_iter=5)
