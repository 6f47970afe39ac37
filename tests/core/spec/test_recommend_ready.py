"""The recommender prefers backbones whose weights are on this computer, and says when a better one needs a download."""

from core.spec import backbones, strategies
from core.spec.config import RunConfig


def test_offline_recommendation_picks_ready_weights_and_names_the_download():
    counts = {"a": 30, "b": 30}
    ready = strategies.recommend(counts, True, cached=["mobilenet_v2_0.35", "mobilenet_v1_0.25"])
    assert ready.backbone == "mobilenet_v2_0.35"  # the more accurate of the two that are here
    assert "on this computer" in ready.reason and "MobileNet V2 (width 1.0)" in ready.reason
    assert "downloaded first" in ready.reason and ". " not in ready.reason
    RunConfig(dataset_id="d-0123abcd", **ready.overrides()).validate()
    # Nothing ready: the usual choice, saying its weights are downloaded when training starts.
    none = strategies.recommend(counts, True)
    assert none.backbone == "mobilenet_v2_1.0"
    assert f"about {backbones.get('mobilenet_v2_1.0').size_mb:g} MB" in none.reason
    assert "downloaded when training starts" in none.reason
    # The usual choice ready: no download is mentioned.
    usual = strategies.recommend(counts, True, cached=["mobilenet_v2_1.0", "mobilenet_v2_0.35"])
    assert usual.backbone == "mobilenet_v2_1.0" and "download" not in usual.reason
