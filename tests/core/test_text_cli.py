"""The command line for texts: `dataset import` of a table with named columns, one-sentence refusals,
`recommend` and `config --preset recommended` choosing a text encoder."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from core.data import texts as data_texts

ROWS = [(f"a {w} game", "games") for w in ("chess", "puzzle", "card", "board", "racing", "maze")] + \
       [(f"read {w} mail", "mail") for w in ("your", "spam", "team", "web", "imap", "old")]


def test_import_named_columns_then_recommended_config(ws, tmp_path, capsys):
    path = tmp_path / "t.tsv"
    path.write_text("body\ttopic\n" + "\n".join(f"{t}\t{lab}" for t, lab in ROWS) + "\n", encoding="utf-8")
    assert main(["dataset", "import", str(path), "--text-column", "body", "--label-column", "topic", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"] == {"games": 6, "mail": 6}
    assert main(["recommend", "--dataset", info["id"], "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    expected = "wordllama" if data_texts.wordllama_files() else "avg_word_embedding"
    assert rec["backbone"] == expected
    assert main(["config", "--dataset", info["id"], "--preset", "recommended"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["backbone"] == expected and not any(cfg["augment"].values())


@pytest.mark.parametrize("content, words", [("alpha,beta\nx,y\n", "names no text column"),
                                            ("text,label\nhello,a\nworld,a\n", "one class only")])
def test_bad_table_is_one_sentence_exit_2(ws, tmp_path, capsys, content, words):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    assert main(["dataset", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err

