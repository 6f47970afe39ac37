"""`bench audio`: sounds on ../shared/datasets/spoken_words (eight spoken words, 100 clips each) with a fixed
split (the first 60 clips of each class by name train, the next 20 validate, the last 20 test), offline,
each step a fresh interpreter as a user would type it:

- the baseline: per-band mean and standard deviation of a 64-band log-mel spectrogram + logistic regression;
- a small CNN on log-mel trained from scratch (logmel_cnn);
- ImageNet MobileNet V2 0.35 on the spectrogram, feature extraction and fine-tuning, the latter as
  `config --preset recommended` chooses it (the goal: the baseline + 5 points in at most 10 minutes' training);
- YAMNet, when its TF Hub folder is in the workspace's hub cache (it cannot be downloaded offline).

Accuracy on the test clips, training seconds and each step's peak memory (the process's maximum RSS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.data import sounds as data_sounds
from core.engine import sounds
from core.errors import TransferLabError

PROJECT = Path(__file__).resolve().parents[2]
SPOKEN_WORDS = PROJECT.parent / "shared" / "datasets" / "spoken_words"
SPLIT = (("train", 60), ("val", 20), ("test", 20))
# (name, config flags): every run as `config ... && train`.
RUNS: tuple[tuple[str, list[str]], ...] = (
    ("small CNN from scratch (config --preset quick)", ["--preset", "quick"]),
    ("MobileNet V2 0.35 feature extraction", ["--backbone", "logmel_mobilenet_v2_0.35", "--image-size", "96",
                                              "--strategy", "feature_extraction", "--epochs", "30", "--no-augment"]),
    ("MobileNet V2 0.35 fine-tuning (config --preset recommended)", ["--preset", "recommended"]),
)


def fixed_split(src: Path, dest: Path) -> Path:
    """Copy a folder of class folders into train/val/test folders: per class, by sorted name, SPLIT's counts."""
    for label in sorted(p.name for p in src.iterdir() if p.is_dir()):
        clips = sorted((src / label).glob("*.wav"))
        start = 0
        for part, n in SPLIT:
            (dest / part / label).mkdir(parents=True, exist_ok=True)
            for clip in clips[start:start + n]:
                shutil.copy(clip, dest / part / label / clip.name)
            start += n
    return dest


def _measured(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run `python -m core ARGS --json`; its JSON and its peak memory in MB."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=PROJECT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise TransferLabError(f"The benchmark step '{' '.join(args[:2])}' failed: {err.read().strip()[-400:]}")
        return json.loads(out.read()), round(usage.ru_maxrss / 1024, 0)


def baseline(root: Path) -> dict[str, Any]:
    """Per-band log-mel mean and standard deviation + logistic regression, trained on train+val, tested on test."""
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.monotonic()
    sets: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    for part, _ in SPLIT:
        xs, ys = [], []
        for clip in sorted((root / part).glob("*/*.wav")):
            x = data_sounds.fit(data_sounds.decode(clip.read_bytes())[0])
            db = sounds.log_mel(tf.constant(x)[None])[0].numpy()
            xs.append(np.concatenate([db.mean(axis=0), db.std(axis=0)]))
            ys.append(clip.parent.name)
        sets[part] = (xs, ys)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(sets["train"][0] + sets["val"][0], sets["train"][1] + sets["val"][1])
    accuracy = float(np.mean(model.predict(sets["test"][0]) == np.asarray(sets["test"][1])))
    return {"name": "baseline: log-mel statistics + logistic regression", "test_accuracy": round(accuracy, 4),
            "train_seconds": round(time.monotonic() - started, 1)}


def run(keras_cache: str | None = None, runs: tuple[tuple[str, list[str]], ...] = RUNS) -> dict[str, Any]:
    """Every row of the table; its figures."""
    if not SPOKEN_WORDS.is_dir():
        raise TransferLabError(f"The benchmark needs {SPOKEN_WORDS}, which is not on this computer.")
    cache = Path(keras_cache) if keras_cache else PROJECT.parent / "shared" / "keras-cache" / "models"
    with tempfile.TemporaryDirectory(prefix="tl-bench-audio-") as tmp:
        home = Path(tmp) / "home"
        models = home / ".keras" / "models"
        models.mkdir(parents=True)
        for f in cache.glob("*.h5"):
            shutil.copy(f, models / f.name)
        ws = Path(tmp) / "workspace"
        env = {**os.environ, "HOME": str(home), "TL_WORKSPACE": str(ws), "TL_OFFLINE": "1"}
        src = fixed_split(SPOKEN_WORDS, Path(tmp) / "spoken_words")
        rows = [baseline(src)]
        dataset, _ = _measured(["dataset", "import", str(src), "--json"], env)
        hub = ws / "cache" / "tfhub"
        todo = list(runs)
        yamnet = next(iter(hub.glob("*/saved_model.pb")), None) if hub.is_dir() else None
        if yamnet is not None:
            todo.append(("YAMNet feature extraction", ["--backbone", "yamnet", "--strategy", "feature_extraction"]))
        for name, flags in todo:
            cfg, _ = _measured(["config", "--dataset", dataset["id"], *flags, "--json"], env)
            path = Path(tmp) / "config.json"
            path.write_text(json.dumps(cfg))
            result, peak = _measured(["train", str(path), "--quiet", "--json"], env)
            rows.append({"name": name, "backbone": cfg["backbone"], "strategy": cfg["strategy"],
                         "test_accuracy": result["test_accuracy"], "train_seconds": result["train_seconds"],
                         "peak_memory_mb": peak})
    base = rows[0]["test_accuracy"]
    return {"benchmark": "audio", "dataset": "spoken_words", "split": dict(SPLIT), "rows": rows,
            "baseline_accuracy": base, "yamnet": "present" if yamnet else "not in the hub cache (cannot be "
            "downloaded offline)", "cpus": os.cpu_count()}


def describe(result: dict[str, Any]) -> str:
    """The table as text."""
    lines = [f"audio on {result['dataset']} (split {result['split']}, {result['cpus']} CPUs); YAMNet: {result['yamnet']}"]
    for row in result["rows"]:
        peak = f", peak {row['peak_memory_mb']:.0f} MB" if "peak_memory_mb" in row else ""
        delta = (row["test_accuracy"] - result["baseline_accuracy"]) * 100
        lines.append(f"  {row['name']}: {row['test_accuracy']:.3f} ({delta:+.1f} points), "
                     f"{row['train_seconds']:.0f} s{peak}")
    return "\n".join(lines)
