"""The pages with texts: a table's columns picked on the Data page, texts typed class by class, snippets in the
gallery and the text facts of the health report; "Try it" with a text box on the Predictions page."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from core.data import texts
from core.spec import backbones, strategies
from core.spec.config import RunConfig
from core.data.importer import import_path
from core.engine import evaluation
from core.store import datasets
from pages import _explainers, _kinds
from tests.pages.conftest import EVAL, app_test, assert_clean

WORDS = {"billing": ("invoice", "refund", "charged", "payment"), "delivery": ("parcel", "courier", "arrived", "late")}


def _rows(per_class: int = 12) -> list[tuple[str, str, str]]:
    rows = []
    for label, words in WORDS.items():
        for i in range(per_class):
            part = "train" if i < per_class - 4 else ("val" if i < per_class - 2 else "test")
            rows.append((f"number {i}: the {words[i % 4]} and the {words[(i + 1) % 4]} again", label, part))
    return rows


def _csv(header: tuple[str, str, str, str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for i, (text, label, part) in enumerate(_rows()):
        writer.writerow((i, text, label, part))
    return buf.getvalue().encode("utf-8")


def _page_text(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "success", "text")
                     for e in at.get(kind))


def test_a_table_shows_its_header_and_imports_the_columns_picked(ws):
    at = app_test("data").run()
    data = _csv(("id", "body", "topic", "fold"))  # no column named text/label: the person picks them
    at.file_uploader(key="data.upload").set_value(("tickets.csv", data, "text/csv")).run()
    assert_clean(at)
    assert list(at.dataframe[0].value.columns) == ["id", "body", "topic", "fold"]
    key = next(s.key for s in at.selectbox if s.key and s.key.endswith(".text"))
    prefix = key[: -len(".text")]
    assert at.selectbox(key=f"{prefix}.split").value == "fold"  # guessed from the header
    assert datasets.list_datasets(ws) == []  # nothing is imported before the columns are confirmed
    at.selectbox(key=f"{prefix}.text").set_value("body")
    at.selectbox(key=f"{prefix}.label").set_value("topic")
    at.button(key="data.table_import").click().run()
    assert_clean(at)
    [info] = datasets.list_datasets(ws)
    assert sorted(info["classes"]) == ["billing", "delivery"] and info["predefined_split"]
    assert "Imported 'tickets': 24 texts in 2 classes." in _page_text(at)


def test_a_table_whose_text_column_is_numbers_gets_a_sentence(ws):
    at = app_test("data").run()
    at.file_uploader(key="data.upload").set_value(("t.csv", _csv(("id", "body", "label", "split")), "text/csv")).run()
    key = next(s.key for s in at.selectbox if s.key and s.key.endswith(".text"))
    assert at.selectbox(key=key).value == "body"  # guessed from the header
    at.selectbox(key=key).set_value("id")  # a wrong pick: a column of numbers
    at.button(key="data.table_import").click().run()
    assert not at.exception and len(at.error) == 1 and "number" in at.error[0].value
    assert datasets.list_datasets(ws) == []


def test_texts_typed_class_by_class_become_a_dataset(ws):
    at = app_test("data").run()
    at.segmented_control(key="data.builder_kind").set_value("text").run()
    assert_clean(at)
    for slot, (label, words) in zip((1, 2), WORDS.items()):
        at.text_input(key=f"data.class_name.{slot}").set_value(label)
        at.text_area(key=f"data.typed.{slot}").set_value(
            "\n".join(f"my {w} number {i}" for i in range(6) for w in words[:2]) + "\n\n")
    at.run()
    assert "12 text(s)" in _page_text(at)
    at.button(key="data.build").click().run()
    assert_clean(at)
    [info] = datasets.list_datasets(ws)
    assert info["counts"] == {"billing": 12, "delivery": 12} and info.get("kind") == "text"
    images = app_test("data").run()
    assert not [t for t in images.text_area if (t.key or "").startswith("data.typed.")]  # images are not typed


def test_the_gallery_shows_snippets_and_the_health_report_says_the_text_facts(ws, tmp_path):
    rows = _rows()
    rows.append((rows[0][0], "delivery", "train"))  # the same text in both classes
    path = tmp_path / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label", "split"), *rows])
    info = import_path(path, ws, name="tickets")
    assert info["kind"] == texts.KIND
    at = app_test("data").run()
    assert_clean(at)
    text = _page_text(at)
    assert "characters in the middle (median)" in text
    assert "Most telling words per class" in text and "invoice" in text and "parcel" in text
    assert "appear in more than one class" in text
    assert any("number 0: the invoice and the refund again" in str(t.value) for t in at.text)  # a snippet
    assert not at.get("image")


def test_snippets_are_cut_at_a_word():
    assert _kinds.snippet("short text") == "short text"
    assert _kinds.snippet("word " * 100, 20) == "word word word word…"


class _WordModel:
    """A stand-in text classifier: billing words push towards 'billing', delivery words towards 'delivery'."""

    def predict_on_batch(self, batch):
        out = []
        for text in batch:
            words = str(text).split()
            billing = sum(w in WORDS["billing"] for w in words)
            delivery = sum(w in WORDS["delivery"] for w in words)
            p = (1 + billing) / (2 + billing + delivery)
            out.append([p, 1 - p])
        return np.array(out)


def _text_run(ws, tmp_path, make_run):
    path = tmp_path / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label", "split"), *_rows()])
    info = import_path(path, ws, name="tickets")
    run_dir = make_run("done", dataset_id=info["id"], backbone="wordllama", weights="imagenet")
    classes = info["classes"]
    (run_dir / "split.json").write_text(json.dumps({"classes": classes, "train": [], "val": [], "test": []}))
    files = [*info["images"][classes[0]][:3], *info["images"][classes[1]][:3]]
    true = [0, 0, 0, 1, 1, 1]
    probs = [[0.9, 0.1], [0.8, 0.2], [0.03, 0.97], [0.05, 0.95], [0.6, 0.4], [0.2, 0.8]]
    predictions = [{"file": f, "true": t, "pred": int(np.argmax(p)), "probs": p} for f, t, p in zip(files, true, probs)]
    (run_dir / "eval.json").write_text(json.dumps({**EVAL, "n": 6, "classes": classes, "predictions": predictions}))
    return info, files


def _text_of(info, ws, rel):
    return (datasets.dataset_path(info["id"], ws) / rel).read_text(encoding="utf-8")


def test_try_it_takes_a_typed_text_and_highlights_its_deciding_words(ws, tmp_path, make_run, monkeypatch):
    _text_run(ws, tmp_path, make_run)
    monkeypatch.setattr(evaluation, "load_model", lambda run_dir: _WordModel())
    handed = []

    def predict(run_dir, items, top_k, model):
        handed.extend(items)
        return [{"file": name, "prediction": "billing",
                 "top": [{"class": "billing", "probability": 0.75}, {"class": "delivery", "probability": 0.25}]}
                for name, _ in items]

    monkeypatch.setattr(evaluation, "predict", predict)
    at = app_test("predictions").run()
    assert_clean(at)
    assert not at.get("file_uploader") or all(u.key != "pred.camera" for u in at.get("file_uploader"))
    at.text_area(key="pred.text").set_value("please refund the invoice today").run()
    assert_clean(at)
    assert handed == [("please refund the invoice today", b"please refund the invoice today")]
    trying = next(t for t in at.tabs if t.label == "Try it")
    marked = [m.value for m in trying.markdown if "<mark" in m.value]
    assert len(marked) == 1 and marked[0].count("<mark") == 2  # refund and invoice, nothing else
    assert ">refund</mark>" in marked[0] and ">invoice</mark>" in marked[0] and "today</mark>" not in marked[0]
    assert any("Deciding words for 'billing'" in c.value and "**refund**" in c.value for c in trying.caption)


def test_confusion_cells_and_confident_mistakes_list_their_texts(ws, tmp_path, make_run):
    info, files = _text_run(ws, tmp_path, make_run)
    at = app_test("predictions").run()
    assert_clean(at)
    assert at.selectbox(key="pred.cell").options[0] == "true billing → guessed delivery (1)"
    first = next(t for t in at.tabs if t.label == "Test scores and confusion matrix")
    assert any(_text_of(info, ws, files[2]) == t.value for t in first.text)  # the mixed-up text itself
    mistakes = next(t for t in at.tabs if t.label == "Mistakes")
    shown = [t.value for t in mistakes.text]
    assert shown[:2] == [_text_of(info, ws, files[2]), _text_of(info, ws, files[4])]  # most confident first
    assert not at.get("image")


def test_the_highlight_escapes_markup():
    html = _explainers.highlighted_html([{"word": "<b>bold</b>", "weight": 0.5}, {"word": "calm", "weight": 0.0}])
    assert "&lt;b&gt;bold&lt;/b&gt;</mark>" in html and "<b>" not in html and "calm</mark>" not in html
    assert _explainers.deciding([{"word": "a", "weight": 0.1}, {"word": "b", "weight": 0.3},
                                 {"word": "c", "weight": -0.2}]) == ["b", "a"]


def _text_dataset(ws, tmp_path):
    path = tmp_path / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label", "split"), *_rows()])
    return import_path(path, ws, name="tickets")


def test_the_model_page_offers_only_text_encoders_for_texts(ws, tmp_path):
    _text_dataset(ws, tmp_path)
    at = app_test("model").run()
    assert_clean(at)
    backbone = at.selectbox(key="model.backbone")
    assert len(backbone.options) == len(backbones.for_kind("text")) and backbone.value in backbones.for_kind("text")
    assert any("WordLlama" in o for o in backbone.options) and not any("ResNet" in o for o in backbone.options)
    config = RunConfig.from_json(at.session_state["run_config"])
    assert backbones.get(config.backbone).kind == "text"  # the quick preset of texts
    strategy = at.selectbox(key="model.strategy")
    offered = {s for s in strategies.ids() if strategies.get(s).label in strategy.options}
    assert offered == set(strategies.for_kind("text"))  # the same strategies `config` accepts for texts
    assert "layer_transfer" not in offered and {"fine_tune", "distill", "domain_adversarial"} <= offered
    caption = next(c.value for c in at.caption if "Not offered for texts:" in c.value)
    assert strategies.get("layer_transfer").label in caption and strategies.refusal("layer_transfer", "text") in caption
    assert not [r for r in at.radio if r.key == "model_ui.everyday"]  # no question about photos
