"""The pages with texts: a table's columns picked on the Data page, texts typed class by class, snippets in the
gallery and the text facts of the health report; "Try it" with a text box on the Predictions page."""

from __future__ import annotations

import csv
import io

from core.data import texts
from core.data.importer import import_path
from core.store import datasets
from pages import _kinds
from tests.pages.conftest import app_test, assert_clean

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
