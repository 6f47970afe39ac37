"""The text kind's data side: reading texts (one .txt file each, or the rows of a CSV / TSV / JSON Lines
table), their encodings, caps and health facts, the built-in `texts` sample, and tf.data's loader.

A stored text is a UTF-8 `.txt` file under its class folder, like an image. A table becomes one such
file per row (`rows_of_table`), with the row's `split` kept as the dataset's predefined split. Nothing
here imports TensorFlow on import; the WordLlama tokenizer (the `tokenizers` library) is loaded on
first use.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from core.data.limits import ImportLimits, Refused, size_words
from core.errors import DatasetError

KIND = "text"  # the kind id (core.spec.kinds)
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
MAX_TEXT_CHARS = 20_000  # a longer text is set aside with a sentence (a model reads its first few hundred words)
MAX_TABLE_ROWS = 200_000  # rows of one table (the import's member cap applies too)
TEXT_NAMES = ("text", "texts", "sentence", "content", "message", "comment", "review", "body", "description", "document")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "tag", "intent", "sentiment")
SPLIT_NAMES = ("split", "part", "subset", "fold")
SPLIT_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "dev": "val", "test": "test", "testing": "test"}
ENCODINGS = ("utf-8", "cp1252", "latin-1")  # tried in this order (a UTF-8 byte-order mark is read and dropped)
WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)  # words for the health report: letters only, two or more
STOP_WORDS = frozenset("the and for with from that this are was were you your has have not but all can its "
                       "into our out use one any may also more than other".split())
TELLING_WORDS = 8  # words listed per class in the health report
LENGTH_BINS = (10, 25, 50, 100, 200, 500, 1000, 5000, MAX_TEXT_CHARS)


# ---------------------------------------------------------------- one text


def decode_text(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Bytes as text and the encoding read: UTF-8 (with or without BOM), else Windows-1252, else Latin-1.

    A file with NUL bytes is not text (a binary file or UTF-16); it gets a sentence."""
    if data.startswith(b"\xef\xbb\xbf"):
        data, encoding = data[3:], encoding or "utf-8"
    if b"\x00" in data[:4096]:
        raise DatasetError("not a text file (it holds binary bytes; save it as UTF-8 text)")
    for name in (encoding,) if encoding else ENCODINGS:
        try:
            return data.decode(name), name
        except (UnicodeDecodeError, LookupError):
            continue
    raise DatasetError(f"cannot be read as {encoding} text; save it as UTF-8")


def clean(text: str) -> str:
    """A text as stored: Unicode NFC, runs of white space (line breaks too) made one space, trimmed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def check_text(text: str) -> str:
    """A cleaned text, or a DatasetError saying why it is set aside (empty, too long)."""
    text = clean(text)
    if not text:
        raise DatasetError("empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise DatasetError(f"a text of {len(text):,} characters, longer than the limit of {MAX_TEXT_CHARS:,}; "
                           "cut it into shorter texts")
    return text


def sniff(name: str, head: bytes) -> bool:
    """True for a .txt file name (content alone cannot tell a text from any other file)."""
    return PurePosixPath(name).suffix.lower() == ".txt"


def normalise(name: str, data: bytes, limits: ImportLimits) -> list[tuple[str, bytes, dict]]:
    """One text as stored: clean UTF-8, with its length and (for the health report) its words."""
    if len(data) > limits.max_file_bytes:
        raise DatasetError(f"larger than {size_words(limits.max_file_bytes)}")
    text = check_text(decode_text(data)[0])
    return [(".txt", text.encode("utf-8"), {"chars": len(text), "text": text})]


# ---------------------------------------------------------------- tables


@dataclass
class Table:
    """The rows of a CSV / TSV / JSON Lines file: (label, text, split part or None, where), and what was set aside."""

    rows: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    columns: dict[str, str | None] = field(default_factory=dict)


def is_table(name: str) -> bool:
    """True for a file name the table reader takes (.csv, .tsv, .jsonl)."""
    return PurePosixPath(name).suffix.lower() in TABLE_SUFFIXES


def read_table_file(path: Path, limits: ImportLimits, **columns: Any) -> Table:
    """A table on disk, refused in one sentence before reading when it is larger than the file cap."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise Refused(f"{path.name} is {size_words(size)}, larger than the limit of {size_words(limits.max_file_bytes)} "
                      "for one file; split it into smaller files or raise --max-file-mb.")
    return read_table(path.name, path.read_bytes(), limits, **columns)


def read_table(name: str, data: bytes, limits: ImportLimits, text_column: str | None = None,
               label_column: str | None = None, encoding: str | None = None, split_column: str | None = None) -> Table:
    """Rows of texts and labels from a CSV / TSV (with a header row) or JSON Lines file.

    Columns are found by their header (`text`, `label`, an optional `split`) unless named; a row that
    cannot be used is set aside with its reason; the table as a whole is refused in one sentence when
    it has no usable columns, a column of numbers as texts, or a single class. `split_column`: None guesses it
    from the header, "" means the table has none."""
    if len(data) > limits.max_file_bytes:
        raise Refused(f"{name} is {size_words(len(data))}, larger than the limit of "
                      f"{size_words(limits.max_file_bytes)} for one file; split it into smaller files.")
    try:
        content, used = decode_text(data, encoding)
    except DatasetError as exc:
        raise DatasetError(f"{name} {exc}.") from None
    table = Table()
    if used != "utf-8":
        table.notes.append(f"{name} is not UTF-8; it was read as {'Windows-1252' if used == 'cp1252' else used} "
                           "(check accented letters, or save it as UTF-8).")
    records, header = _records(content, name, table)
    table.columns = _columns(header, name, text_column, label_column, split_column)
    _rows(records, table, name, max_rows=min(MAX_TABLE_ROWS, limits.max_members))
    _check_table(table, name)
    return table


def _records(content: str, name: str, table: Table) -> tuple[list[tuple[int, dict]], list[str]]:
    suffix = PurePosixPath(name).suffix.lower()
    return (_json_lines(content, name, table) if suffix in (".jsonl", ".ndjson") else _delimited(content, name, suffix))


def preview(name: str, data: bytes, rows: int = 5, encoding: str | None = None) -> tuple[list[str], list[dict]]:
    """A table's header and its first rows as the import reads them, for a page to let a person pick the columns;
    a DatasetError sentence where it cannot be read."""
    try:
        content, _ = decode_text(data, encoding)
    except DatasetError as exc:
        raise DatasetError(f"{name} {exc}.") from None
    records, header = _records(content, name, Table())
    return header, [record for _, record in records[:rows]]


def guess_columns(header: list[str]) -> dict[str, str | None]:
    """The text, label and split columns the import takes when none is named (None where the header names none)."""
    text = _find(header, None, TEXT_NAMES, "", "", "")
    label = _find(header, None, LABEL_NAMES, "", "", "")
    split = next((h for h in header if h.casefold() in SPLIT_NAMES and h not in (text, label)), None)
    return {"text": text, "label": label, "split": split}


def _delimited(content: str, name: str, suffix: str) -> tuple[list[tuple[int, dict]], list[str]]:
    """The records of a CSV / TSV: (line number, {column: value}), and the header."""
    first = content[:8192]
    if suffix == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(first.split("\n", 1)[0] or ",", delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    csv.field_size_limit(max(csv.field_size_limit(), 64 * 2**20))  # long texts are set aside by check_text, not here
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DatasetError(f"{name} is empty.") from None
    records = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                records.append((reader.line_num, dict(zip(header, row))))
    except csv.Error as exc:
        raise DatasetError(f"{name} is not a readable table near line {reader.line_num} ({exc}).") from None
    return records, header


def _json_lines(content: str, name: str, table: Table) -> tuple[list[tuple[int, dict]], list[str]]:
    """The records of a JSON Lines file (one object a line), and every key seen, in order."""
    records, header = [], []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            table.skipped.append({"file": f"{name}:{number}", "reason": "not a JSON object on one line"})
            continue
        header += [k for k in obj if k not in header]
        records.append((number, {k: "" if v is None else v for k, v in obj.items()}))
    if not records:
        raise DatasetError(f"{name} holds no JSON objects, one a line, with a text and a label.")
    return records, header


def _find(header: list[str], wanted: str | None, names: tuple[str, ...], what: str, flag: str, name: str) -> str | None:
    if wanted:
        match = next((h for h in header if h == wanted), None) or next(
            (h for h in header if h.casefold() == wanted.casefold()), None)
        if match is None:
            raise DatasetError(f"{name} has no column '{wanted}'; its columns are {', '.join(header) or 'none'}.")
        return match
    folded = {h.casefold(): h for h in header}
    found = next((folded[n] for n in names if n in folded), None)
    if found is None and what:
        shown = ", ".join(f"'{h}'" for h in header[:6])
        raise DatasetError(
            f"{name}'s first row ({shown}) names no {what} column; the first row must be a header naming the columns "
            f"(for example text,label), or choose the column with {flag}.")
    return found


def _columns(header: list[str], name: str, text_column: str | None, label_column: str | None,
             split_column: str | None = None) -> dict[str, str | None]:
    text = _find(header, text_column, TEXT_NAMES, "text", "--text-column", name)
    label = _find(header, label_column, LABEL_NAMES, "label", "--label-column", name)
    if text == label:
        raise DatasetError(f"The text column and the label column of {name} are both '{text}'; choose two columns.")
    if split_column:
        split = _find(header, split_column, SPLIT_NAMES, "split", "", name)
        if split in (text, label):
            raise DatasetError(f"The split column of {name} cannot also be its text or label column; choose another.")
    elif split_column == "":
        split = None
    else:
        split = next((h for h in header if h.casefold() in SPLIT_NAMES and h not in (text, label)), None)
    return {"text": text, "label": label, "split": split}


def _rows(records: list[tuple[int, dict]], table: Table, name: str, max_rows: int) -> None:
    if len(records) > max_rows:
        raise Refused(f"{name} has {len(records):,} rows, more than the limit of {max_rows:,}; import fewer rows.")
    cols = table.columns
    seen: dict[str, set[str]] = {}
    for number, record in records:
        where = f"{name}:{number}"
        label = clean(str(record.get(cols["label"], "")))
        try:
            text = check_text(str(record.get(cols["text"], "")))
        except DatasetError as exc:
            table.skipped.append({"file": where, "reason": str(exc)})
            continue
        if not label:
            table.skipped.append({"file": where, "reason": "no label"})
            continue
        part = None
        if cols["split"]:
            value = clean(str(record.get(cols["split"], ""))).casefold()
            part = SPLIT_VALUES.get(value)
            if part is None:
                table.skipped.append({"file": where, "reason": f"split '{value}' is not train, val or test"})
                continue
        seen.setdefault(text, set()).add(label)
        table.rows.append((label, text, part, where))
    several = sum(1 for labels in seen.values() if len(labels) > 1)
    if several:
        table.notes.append(f"{several} text(s) carry several labels (the same text in more than one class); "
                           "each is kept once per label and listed as a duplicate across classes.")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text.replace(",", "")))
    except ValueError:
        return False


def _check_table(table: Table, name: str) -> None:
    cols = table.columns
    if not table.rows:
        raise DatasetError(f"{name} has no row with both a text and a label"
                           + (f" ({len(table.skipped)} set aside, the first: {table.skipped[0]['reason']})."
                              if table.skipped else "."))
    if all(_is_number(text) for _, text, _, _ in table.rows):
        raise DatasetError(f"The column '{cols['text']}' of {name} holds only numbers, not texts; choose the column of "
                           "texts with --text-column.")
    labels = sorted({label for label, _, _, _ in table.rows})
    if len(labels) < 2:
        raise DatasetError(f"The column '{cols['label']}' of {name} holds one class only ('{labels[0]}'); a classifier "
                           "needs at least two classes.")
    if cols["split"] and not any(part == "train" for _, _, part, _ in table.rows):
        raise DatasetError(f"The column '{cols['split']}' of {name} marks no row as train; mark the rows to learn "
                           "from as train.")


# ---------------------------------------------------------------- dataset.json and the health report


def record(facts: list[dict]) -> dict:
    """What dataset.json keeps of the labelled texts: their lengths, and the most telling words per class."""
    per_class: dict[str, Counter] = {}
    for fact in facts:
        words = {w.casefold() for w in WORD.findall(fact.get("text", ""))} - STOP_WORDS
        per_class.setdefault(fact.get("label", ""), Counter()).update(words)
    return {"text_chars": [f["chars"] for f in facts],
            "text_tokens": token_counts([f.get("text", "") for f in facts]),
            "telling_words": telling_words(per_class)}


def telling_words(per_class: dict[str, Counter]) -> dict[str, list[str]]:
    """The words that most set each class apart: smoothed log-odds of appearing in its texts vs the others'."""
    total = Counter()
    for counts in per_class.values():
        total.update(counts)
    out = {}
    for label, counts in per_class.items():
        others = total - counts
        n_in, n_out = sum(counts.values()) + 1, sum(others.values()) + 1

        def score(word: str, counts: Counter = counts, others: Counter = others, n_in: int = n_in,
                  n_out: int = n_out) -> float:
            return math.log((counts[word] + 0.5) / n_in) - math.log((others[word] + 0.5) / n_out)

        ranked = sorted((w for w, n in counts.items() if n >= 2), key=lambda w: (-score(w), w))
        out[label] = ranked[:TELLING_WORDS]
    return out


def token_counts(texts: list[str]) -> list[int]:
    """Tokens per text by WordLlama's tokenizer (words when it is not installed)."""
    tok = wordllama_tokenizer()
    if tok is None:
        return [len(t.split()) for t in texts]
    return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)] if texts else []


def _histogram(values: list[int]) -> dict[str, int]:
    out, low = {}, 0
    for high in LENGTH_BINS:
        out[f"{low + 1}-{high}"] = sum(1 for v in values if low < v <= high)
        low = high
    return {k: v for k, v in out.items() if v}


def health_facts(info: dict) -> dict:
    """The health report's facts of texts: lengths (characters and tokens) and the telling words per class."""
    chars, tokens = info.get("text_chars", []), info.get("text_tokens", [])
    summary = {"median_chars": statistics.median(chars) if chars else None,
               "median_tokens": statistics.median(tokens) if tokens else None,
               "chars_histogram": _histogram(chars), "tokens_histogram": _histogram(tokens)}
    return {"texts": {**summary, "telling_words": info.get("telling_words", {})}}


def loader(size: int) -> Callable[[Any], Any]:
    """Inside tf.data: a stored text's path tensor -> the text, a string scalar (the model tokenizes it)."""
    import tensorflow as tf

    return lambda path: tf.io.read_file(path)


# ---------------------------------------------------------------- WordLlama's files


@lru_cache(maxsize=1)
def wordllama_files() -> tuple[Path, Path] | None:
    """WordLlama's token table (safetensors) and tokenizer (tokenizer.json), as its wheel ships them; None when
    the package is not installed. Its own loader looks for the tokenizer in the wrong folder, so the files are
    read directly."""
    import importlib.util

    found = importlib.util.find_spec("wordllama")
    if found is None or not found.submodule_search_locations:
        return None
    root = Path(next(iter(found.submodule_search_locations)))
    weights, tokenizer = root / "weights" / "l2_supercat_256.safetensors", root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    return (weights, tokenizer) if weights.is_file() and tokenizer.is_file() else None


@lru_cache(maxsize=1)
def wordllama_tokenizer() -> Any:
    """WordLlama's tokenizer (tokenizers.Tokenizer, no padding or truncation), or None when not installed."""
    files = wordllama_files()
    if files is None:
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(files[1]))
    tok.no_padding()
    tok.no_truncation()
    return tok


# ---------------------------------------------------------------- the built-in sample

SAMPLE_CLASSES = {
    "praise": ("great", "wonderful", "excellent", "lovely", "helpful", "fantastic", "friendly", "quick"),
    "complaint": ("broken", "slow", "rude", "late", "terrible", "disappointing", "missing", "wrong"),
    "question": ("how", "when", "where", "which", "could", "would", "can", "what"),
}
SAMPLE_PER_CLASS = 40
_SUBJECTS = ("the delivery", "the staff", "the app", "my order", "the course", "the service", "the manual", "the price")


def sample_rows(per_class: int = SAMPLE_PER_CLASS, seed: int = 0) -> list[tuple[str, str]]:
    """Generated short feedback texts (praise, complaint, question), made offline: (text, label)."""
    import random

    rng = random.Random(seed)
    rows = []
    for label, words in SAMPLE_CLASSES.items():
        for _ in range(per_class):
            subject, word = rng.choice(_SUBJECTS), rng.choice(words)
            if label == "question":
                text = f"{word.capitalize()} I change {subject} before {rng.choice(('Monday', 'tomorrow', 'noon'))}?"
            elif label == "praise":
                text = f"{subject.capitalize()} was {word}, thank you {rng.choice(('so much', 'again', 'all'))}!"
            else:
                text = f"{subject.capitalize()} was {word} {rng.choice(('again', 'today', 'this week'))}."
            rows.append((text, label))
    return rows


def write_sample(dest: Path, per_class: int = SAMPLE_PER_CLASS, seed: int = 0) -> Path:
    """The `texts` sample as a CSV file (text,label) at dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(sample_rows(per_class, seed))
    return dest
