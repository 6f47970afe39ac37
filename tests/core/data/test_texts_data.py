"""Texts in: tables (CSV / TSV / JSON Lines), class folders of .txt files, encodings, caps and bad files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from core.data import health, importer, samples, texts
from core.data.limits import ImportLimits, Refused
from core.errors import DatasetError
from core.store import datasets

ROWS = [("a fast chess engine", "games"), ("a puzzle game for kids", "games"), ("play cards with friends", "games"),
        ("edit text in the terminal", "editors"), ("a small text editor", "editors"), ("vim like editor", "editors")]


def _csv(path: Path, rows, header="text,label", sep=",", encoding="utf-8") -> Path:
    lines = [header] + [sep.join(r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def test_csv_with_header_guessed_columns(ws, tmp_path):
    info = importer.import_path(_csv(tmp_path / "t.csv", ROWS), ws)
    assert info["kind"] == "text" and info["counts"] == {"editors": 3, "games": 3}
    stored = datasets.dataset_path(info["id"], ws) / info["images"]["games"][0]
    assert stored.suffix == ".txt" and stored.read_text(encoding="utf-8") == "a fast chess engine"
    report = health.health_report(info)
    assert report["texts"]["median_chars"] > 0 and "games" in report["texts"]["telling_words"]


def test_tsv_named_columns_and_split_kept(ws, tmp_path):
    rows = [(t, lab, "train" if i % 3 else "test") for i, (t, lab) in enumerate(ROWS * 2)]
    path = _csv(tmp_path / "t.tsv", [(lab, t, s) for t, lab, s in rows], header="topic\tbody\tsplit", sep="\t")
    info = importer.import_path(path, ws, columns={"text_column": "body", "label_column": "topic"})
    parts = info["predefined_split"]
    assert len(parts["train"]) == 8 and len(parts["test"]) == 4


def test_jsonl_bad_lines_set_aside(ws, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([json.dumps({"text": t, "label": lab}) for t, lab in ROWS] + ["not json", "[1, 2]"]),
                    encoding="utf-8")
    info = importer.import_path(path, ws)
    assert sum(info["counts"].values()) == 6
    assert [s["reason"] for s in info["skipped"]] == ["not a JSON object on one line"] * 2


def test_empty_duplicate_and_multi_label_texts_reported(ws, tmp_path):
    rows = ROWS + [("", "games"), ("a small text editor", "games"), ("a fast chess engine", "games")]
    info = importer.import_path(_csv(tmp_path / "t.csv", rows), ws)
    assert {"file": "t.csv:8", "reason": "empty text"} in info["skipped"]
    assert any("several labels" in w for w in info["warnings"])
    dup = health.find_duplicates(info)
    assert len(dup["across"]) == 1 and len(dup["within"]) == 1


def test_encodings_bom_and_latin1(ws, tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + "text,label\ncafé crème,a\nthé,b\nkaffee,a\ntee,b\n".encode("utf-8"))
    info = importer.import_path(bom, ws)
    assert info["columns"]["text"] == "text" and not any("UTF-8" in w for w in info["warnings"])
    latin = _csv(tmp_path / "latin.csv", [("café crème", "a"), ("thé", "b"), ("kaffee", "a"), ("tee", "b")],
                 encoding="latin-1")
    info = importer.import_path(latin, ws)
    stored = datasets.dataset_path(info["id"], ws) / info["images"]["a"][0]
    assert stored.read_text(encoding="utf-8") == "café crème"
    assert any("not UTF-8" in w for w in info["warnings"])


@pytest.mark.parametrize("content, words", [
    ("alpha,beta\nhello there,x\nbye now,y\n", "names no text column"),
    ("text,label\nhello,x\nworld,x\n", "one class only"),
    ("text,label\n1,x\n2.5,y\n", "holds only numbers"),
    ("", "is empty"),
])
def test_bad_tables_one_sentence_nothing_written(ws, tmp_path, content, words):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=words):
        importer.import_path(path, ws)
    assert datasets.list_datasets(ws) == []


def test_huge_file_refused_before_reading(ws, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as fh:  # a sparse file: 1 GB on paper, nothing on disk
        fh.truncate(2**30)
    with pytest.raises(Refused, match="larger than the limit"):
        importer.import_path(path, ws)


def test_million_character_text_set_aside_rest_kept(ws, tmp_path):
    rows = ROWS + [("x" * 1_000_000, "games")]
    info = importer.import_path(_csv(tmp_path / "t.csv", rows), ws)
    assert sum(info["counts"].values()) == 6
    assert "1,000,000 characters" in info["skipped"][0]["reason"]


def test_row_cap(ws, tmp_path):
    with pytest.raises(Refused, match="more than the limit of 4"):
        importer.import_path(_csv(tmp_path / "t.csv", ROWS), ws, limits=ImportLimits(max_members=4))


def test_zip_of_class_folders_of_txt(ws):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (text, label) in enumerate(ROWS):
            zf.writestr(f"mine/{label}/{i}.txt", text.encode("cp1252") if i == 0 else text.encode("utf-8"))
        zf.writestr("mine/games/empty.txt", b"  \n")
    buf.seek(0)
    info = importer.import_upload(buf, "mine.zip", ws)
    assert info["kind"] == "text" and info["counts"] == {"editors": 3, "games": 3}
    assert info["skipped"] == [{"file": "games/empty.txt", "reason": "empty text"}]


def test_uploaded_table_and_sample(ws, tmp_path):
    data = _csv(tmp_path / "t.csv", ROWS).read_bytes()
    info = importer.import_upload(io.BytesIO(data), "up.csv", ws)
    assert info["source"] == "up.csv" and len(info["classes"]) == 2
    sample = samples.import_sample("texts", ws)
    assert sample["kind"] == "text" and set(sample["counts"]) == set(texts.SAMPLE_CLASSES)


def test_decode_text_refuses_binary():
    with pytest.raises(DatasetError, match="binary"):
        texts.decode_text(b"\x00\x01\x02abc")
