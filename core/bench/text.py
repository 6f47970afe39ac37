"""`bench text`: short real texts (`../shared/datasets/debian_packages`, 1,433 package descriptions in 6
sections), with 20 training + 10 validation texts per class (a `split` column; the rest is the test set)
and with all of them (the same test set). TF-IDF + logistic regression (scikit-learn) is the baseline;
then the average word embedding from scratch, WordLlama feature extraction and fine-tuning, each an
ordinary run (`config`, `train`) in a fresh interpreter, with its training seconds and peak memory.

Goal (issue 25): the `recommended` text preset >= TF-IDF + 5 points on the 20-per-class split, in at
most 3 minutes of training on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.errors import TransferLabError

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT.parent / "shared" / "datasets" / "debian_packages" / "debian_packages.csv"
FEW, VAL, TEST_FRACTION = 20, 10, 0.3
RUNS = {  # name -> config flags (the preset first); the recommended preset is WordLlama feature extraction
    "average word embedding (scratch)": ["--preset", "recommended", "--backbone", "avg_word_embedding",
                                         "--strategy", "from_scratch", "--weights", "none", "--epochs", "40"],
    "WordLlama feature extraction (recommended preset)": ["--preset", "recommended"],
    "WordLlama fine-tuning": ["--preset", "best", "--epochs", "30", "--fine-tune-epochs", "4"],
}
RECOMMENDED = "WordLlama feature extraction (recommended preset)"


def _splits(seed: int = 0) -> dict[str, list[tuple[str, str, str]]]:
    """Rows (text, label, split) of the two settings: 20/10 per class, and all; the test rows are the same."""
    with DATA.open(encoding="utf-8") as fh:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(fh)]
    by_class: dict[str, list[str]] = {}
    for text, label in rows:
        by_class.setdefault(label, []).append(text)
    few, full = [], []
    rng = random.Random(seed)
    for label, texts in sorted(by_class.items()):
        rng.shuffle(texts)
        n_test = int(len(texts) * TEST_FRACTION)
        test, val, rest = texts[:n_test], texts[n_test:n_test + VAL], texts[n_test + VAL:]
        few += [(t, label, "test") for t in test + rest[FEW:]] + [(t, label, "val") for t in val] + \
               [(t, label, "train") for t in rest[:FEW]]
        full += [(t, label, "test") for t in test] + [(t, label, "val") for t in val] + [(t, label, "train") for t in rest]
    return {"20 per class": few, "all": full}


def _tfidf(rows: list[tuple[str, str, str]]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = [(t, lab) for t, lab, s in rows if s == "train"]
    test = [(t, lab) for t, lab, s in rows if s == "test"]
    started = time.monotonic()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LogisticRegression(max_iter=2000, C=10.0).fit(vec.fit_transform([t for t, _ in train]), [lab for _, lab in train])
    seconds = time.monotonic() - started
    accuracy = float((model.predict(vec.transform([t for t, _ in test])) == [lab for _, lab in test]).mean())
    return {"accuracy": round(accuracy, 4), "train_seconds": round(seconds, 2), "peak_mb": None, "test": len(test)}


_MEASURED = ("import resource, runpy, sys; sys.argv = ['core', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('core', run_name='__main__')\n"
             "finally:\n    sys.stderr.write('PEAK_KB %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")


def _cli(args: list[str], env: dict[str, str]) -> tuple[str, int]:
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *args], cwd=PROJECT, env=env, capture_output=True, text=True)
    peak = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")), 0)
    if proc.returncode != 0:
        raise TransferLabError(f"The benchmark step '{' '.join(args[:2])}' failed: {proc.stderr.strip()[-600:]}")
    return proc.stdout, peak


def _train(flags: list[str], dataset: str, tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    config, _ = _cli(["config", "--dataset", dataset, *flags], env)
    path = tmp / "config.json"
    path.write_text(config)
    out, peak = _cli(["train", str(path), "--quiet", "--json"], env)
    result = json.loads(out)
    trained = json.loads(config)
    return {"accuracy": result["test_accuracy"], "train_seconds": result["train_seconds"],
            "peak_mb": round(peak / 1024), "backbone": trained["backbone"], "strategy": trained["strategy"],
            "epochs": trained["epochs"], "fine_tune_epochs": trained["fine_tune_epochs"]}


def run(keras_cache: str | None = None) -> dict[str, Any]:
    """Every method on both settings; the figures."""
    if not DATA.is_file():
        raise TransferLabError(f"The benchmark needs {DATA}; it is not on this computer.")
    table: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tl-bench-text-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "HOME": str(tmp / "home"), "TL_WORKSPACE": str(tmp / "ws"), "TL_OFFLINE": "1"}
        for setting, rows in _splits().items():
            src = tmp / f"debian_{setting.split()[0]}.csv"
            with src.open("w", encoding="utf-8", newline="") as fh:
                csv.writer(fh).writerows([("text", "label", "split"), *rows])
            dataset = json.loads(_cli(["dataset", "import", str(src), "--json"], env)[0])["id"]
            table[setting] = {"TF-IDF + logistic regression": _tfidf(rows)}
            for name, flags in RUNS.items():
                table[setting][name] = _train(flags, dataset, tmp, env)
                print(f"bench text: {setting}, {name}: {table[setting][name]}", file=sys.stderr, flush=True)
    few = table["20 per class"]
    gain = few[RECOMMENDED]["accuracy"] - few["TF-IDF + logistic regression"]["accuracy"]
    return {"benchmark": "text", "table": table, "recommended_gain_points": round(100 * gain, 1),
            "goal_met": gain >= 0.05 and few[RECOMMENDED]["train_seconds"] <= 180,
            "cpus": os.cpu_count(), "peak_of_this_process_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def describe(result: dict[str, Any]) -> str:
    """The table as text."""
    lines = [f"text: recommended preset vs TF-IDF on 20 per class: {result['recommended_gain_points']:+.1f} points "
             f"(goal +5, met: {result['goal_met']}), {result['cpus']} CPUs"]
    for setting, rows in result["table"].items():
        lines.append(f"  {setting}:")
        for name, r in rows.items():
            peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']} MB"
            lines.append(f"    {name:<50} accuracy {r['accuracy']:.3f}  train {r['train_seconds']:.1f} s  peak {peak}")
    return "\n".join(lines)
