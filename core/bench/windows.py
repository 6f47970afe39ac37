"""`bench windows`: long recordings cut into windows of a chosen length (`dataset import --window`), on
recordings made by code (offline): each is RECORDING_SECONDS of one class's sound repeated once a second (the
`sounds` sample's whistles, chirps, buzzes, knocks, each drawn anew), like a bird repeating its call.

For each window length: import the training recordings with `--window`, `config --preset quick` (the small CNN
from scratch, time shift on: each epoch as many random seconds of a piece as it has), `train`, then `predict` held-out
recordings two ways, in the same run: whole (the mean of their one-second windows' answers, what `predict`
answers now) and their middle second alone (what `predict` answered before). Accuracy on the held-out
recordings, the run's own test accuracy (its pieces), training seconds and peak memory.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.audio import _measured
from core.data import sounds

RECORDING_SECONDS = 4.0
TRAIN_RECORDINGS, HELD_OUT_RECORDINGS = 24, 10  # per class
WINDOWS = (1.0, 2.0, 4.0)


def recording(kind: str, rng: np.random.Generator) -> np.ndarray:
    """RECORDING_SECONDS of `kind`: one sound of the `sounds` sample each second (its pitch, timing, length and
    background noise drawn anew), like a bird repeating its call."""
    return np.concatenate([sounds._sound(kind, rng) for _ in range(int(RECORDING_SECONDS))])


def write_recordings(dest: Path, per_class: int, seed: int) -> list[tuple[Path, str]]:
    """Class folders of recordings under dest; [(file, class)]."""
    rng = np.random.default_rng(seed)
    files = []
    for kind in sounds.SOUND_CLASSES:
        (dest / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = dest / kind / f"{kind}_{i:03d}.wav"
            path.write_bytes(sounds.to_wav(recording(kind, rng)))
            files.append((path, kind))
    return files


def _accuracy(run_id: str, files: list[tuple[Path, str]], env: dict[str, str]) -> float:
    answers, _ = _measured(["predict", run_id, *[str(p) for p, _ in files], "--json"], env)
    return round(float(np.mean([a.get("prediction") == label for a, (_, label) in zip(answers, files)])), 4)


def run(keras_cache: str | None = None, windows: tuple[float, ...] = WINDOWS) -> dict[str, Any]:
    """One row per window length; its figures."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="tl-bench-windows-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "HOME": str(root / "home"), "TL_WORKSPACE": str(root / "workspace"), "TL_OFFLINE": "1"}
        write_recordings(root / "train", TRAIN_RECORDINGS, seed=0)
        held_out = write_recordings(root / "held_out", HELD_OUT_RECORDINGS, seed=1)
        middles = []
        for path, label in held_out:
            middle = root / "middle" / path.name
            middle.parent.mkdir(exist_ok=True)
            middle.write_bytes(sounds.to_wav(sounds.fit(sounds.decode(path.read_bytes())[0])))
            middles.append((middle, label))
        for window in windows:
            dataset, _ = _measured(["dataset", "import", str(root / "train"), "--window", str(window), "--name",
                                    f"w{window:g}", "--json"], env)
            cfg, _ = _measured(["config", "--dataset", dataset["id"], "--preset", "quick", "--json"], env)
            path = root / "config.json"
            path.write_text(json.dumps(cfg))
            result, peak = _measured(["train", str(path), "--quiet", "--json"], env)
            rows.append({"window_seconds": window, "pieces": sum(dataset["counts"].values()),
                         "held_out_accuracy": _accuracy(result["id"], held_out, env),
                         "held_out_middle_second_accuracy": _accuracy(result["id"], middles, env),
                         "own_test_accuracy": result["test_accuracy"], "train_seconds": result["train_seconds"],
                         "peak_memory_mb": peak})
    return {"benchmark": "windows", "recordings": {"seconds": RECORDING_SECONDS,
            "train_per_class": TRAIN_RECORDINGS, "held_out_per_class": HELD_OUT_RECORDINGS,
            "classes": list(sounds.SOUND_CLASSES)}, "rows": rows, "cpus": os.cpu_count()}


def describe(result: dict[str, Any]) -> str:
    """The table as text."""
    r = result["recordings"]
    lines = [f"windows on {r['train_per_class']} recordings of {r['seconds']:g} s per class (a sound a second), "
             f"{r['held_out_per_class']} held out per class, {result['cpus']} CPUs"]
    for row in result["rows"]:
        lines.append(f"  --window {row['window_seconds']:g}: {row['pieces']} pieces; held-out recordings "
                     f"{row['held_out_accuracy']:.3f} (mean of their seconds) vs {row['held_out_middle_second_accuracy']:.3f} "
                     f"(middle second); own test {row['own_test_accuracy']:.3f}; {row['train_seconds']:.0f} s, "
                     f"peak {row['peak_memory_mb']:.0f} MB")
    return "\n".join(lines)
