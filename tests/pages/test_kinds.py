"""The pages ask the kind of data: a kind that exists only in this test (core/test_plugins.py's vectors) is shown
in its own words, without image-only parts, and images stay the only choice while they are the only kind."""

from core.data import importer
from core.engine import evaluation
from core.spec import backbones
from core.data import kinds as data_kinds
from core.spec import kinds as spec_kinds
from pages import _kinds
from tests.core.test_plugins import TOY_BACKBONE, VECTOR, VECTOR_DATA, _vector_source
from tests.pages.conftest import app_test, assert_clean, plotly_charts


def _only_images(monkeypatch) -> None:
    """The app as it was with images as its only kind of data (sounds and texts registered by their modules
    are taken out for the test)."""
    for registry in (spec_kinds.KINDS, data_kinds.DATA_KINDS):
        for kind in [k for k in registry if k != "image"]:
            monkeypatch.delitem(registry, kind)


def _text(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning") for e in at.get(kind))


def test_a_dataset_of_another_kind_is_shown_in_its_own_words(ws, tmp_path, monkeypatch):
    _only_images(monkeypatch)
    monkeypatch.setitem(spec_kinds.KINDS, "vector", VECTOR)
    monkeypatch.setitem(data_kinds.DATA_KINDS, "vector", VECTOR_DATA)
    monkeypatch.delitem(_kinds.GALLERIES, VECTOR.gallery)  # as for a kind whose way of showing is not here yet
    info = importer.import_path(_vector_source(tmp_path / "vectors"), ws, name="vectors")
    at = app_test("data").run()
    assert_clean(at)
    assert at.session_state["dataset_id"] == info["id"]
    assert {m.label: m.value for m in at.metric}["Vectors"] == "32"
    assert [t.label for t in at.tabs if t.label in ("Gallery", "Augmentation preview")] == ["Gallery"]
    text = _text(at)
    assert "example images or vectors" in text  # the intro names every kind the app reads
    assert "Vectors 1-16 of 16 in 'high'." in text  # the gallery counts in the kind's words
    assert "vector: 00000.vec" in text  # a kind without a gallery renderer yet is listed by name, not drawn
    assert not at.image and not [b for b in at.button if b.key.startswith("data.enlarge.")]
    assert "data.builder_kind" in at.session_state  # two kinds: the class builder asks which one
    assert "(32 vectors, 2 classes)" in at.selectbox(key="data.select").options[0]


def test_with_images_only_there_is_no_kind_to_choose(ws, monkeypatch):
    _only_images(monkeypatch)
    at = app_test("data").run()
    assert_clean(at)
    assert "data.builder_kind" not in at.session_state
    assert "drop its pictures in" in _text(at)


def test_samples_say_their_kind_only_when_there_are_several_kinds(monkeypatch):
    _only_images(monkeypatch)
    assert _kinds.sample_caption("shapes", "Shapes.") == "Shapes."
    monkeypatch.setitem(spec_kinds.KINDS, "vector", VECTOR)
    monkeypatch.setitem(data_kinds.DATA_KINDS, "vector", VECTOR_DATA)
    assert _kinds.sample_caption("shapes", "Shapes.") == "Images: Shapes."


def test_try_it_takes_and_answers_items_of_the_runs_kind(ws, make_run, monkeypatch):
    monkeypatch.setitem(spec_kinds.KINDS, "vector", VECTOR)
    monkeypatch.setitem(backbones.BACKBONES, "toy_dense", TOY_BACKBONE)
    monkeypatch.delitem(_kinds.GALLERIES, VECTOR.gallery)  # as for a kind whose way of showing is not here yet
    make_run("done", backbone="toy_dense", weights="none", image_size=32)
    handed = []
    monkeypatch.setattr(evaluation, "load_model", lambda run_dir: "the model")
    monkeypatch.setattr(evaluation, "predict", lambda run_dir, items, top_k, model: handed.extend(items) or [
        {"file": name, "prediction": "red", "top": [{"class": "red", "probability": 0.8}]} for name, _ in items])
    at = app_test("predictions").run()
    trying = next(t for t in at.tabs if t.label == "Try it")
    assert [s.value for s in trying.subheader][0] == "Try it on your own vectors"
    assert not [t for t in at.toggle if t.key == "pred.use_camera"]  # vectors are handed in as files only
    assert at.file_uploader(key="pred.upload").proto.type == [".vec"]
    at.file_uploader(key="pred.upload").set_value([("one.vec", b"1,1,1,1", "text/plain")]).run()
    assert_clean(at)
    assert handed == [("one.vec", b"1,1,1,1")]
    trying = next(t for t in at.tabs if t.label == "Try it")
    assert any("**red** (80% sure)" in m.value for m in trying.markdown)
    assert len(plotly_charts(trying)) == 1  # the probabilities; no Grad-CAM for a kind that explains none
    assert "vector: one.vec" in "\n".join(c.value for c in trying.caption)
