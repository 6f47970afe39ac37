"""`bench quick-shapes`: the first-time flow offline (TL_OFFLINE=1, an empty Keras cache unless one is
given): `dataset sample shapes`, `config --preset quick`, `train`, each a fresh interpreter, as a
user would type them. Goal: >= 90% test accuracy within 3 minutes on a 2-core CPU.
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

from core.errors import TransferLabError

PROJECT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "core", *args, "--json"], cwd=PROJECT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TransferLabError(f"The benchmark step '{' '.join(args[:2])}' failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def run(keras_cache: str | None = None) -> dict[str, Any]:
    """The first-time flow as separate commands, timed; its figures."""
    name = "quick-shapes"
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        home = Path(tmp) / "home"
        models = home / ".keras" / "models"
        models.mkdir(parents=True)
        if keras_cache:
            for f in Path(keras_cache).glob("*.h5"):
                shutil.copy(f, models / f.name)
        ws = Path(tmp) / "workspace"
        env = {**os.environ, "HOME": str(home), "TL_WORKSPACE": str(ws), "TL_OFFLINE": "1"}
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        dataset = _cli(["dataset", "sample", "shapes"], env)
        proc = subprocess.run(
            [sys.executable, "-m", "core", "config", "--dataset", dataset["id"], "--preset", "quick"],
            cwd=PROJECT, env=env, capture_output=True, text=True, check=True,
        )
        config_path = Path(tmp) / "config.json"
        config_path.write_text(proc.stdout)
        result = _cli(["train", str(config_path), "--quiet"], env)
        wall = time.monotonic() - started
        run_dir = ws / "runs" / result["id"]
        trained = json.loads((run_dir / "config.json").read_text())
        notices = [e["message"] for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines()) if e["type"] == "notice"]
    return {
        "benchmark": name,
        "keras_cache": sorted(p.name for p in Path(keras_cache).glob("*.h5")) if keras_cache else [],
        "wall_seconds": round(wall, 1),
        "train_seconds": result["train_seconds"],
        "test_accuracy": result["test_accuracy"],
        "backbone": trained["backbone"],
        "strategy": trained["strategy"],
        "epochs": trained["epochs"],
        "images": sum(dataset["counts"].values()),
        "notices": notices,
        "cpus": os.cpu_count(),
        # The 1-minute load average before and after: on a shared machine the seconds above are inflated by it.
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "schedule": trained["schedule"],
        "learning_rate": trained["learning_rate"],
        "image_size": trained["image_size"],
    }


def describe(result: dict[str, Any]) -> str:
    """One readable paragraph of the figures."""
    return (
        f"{result['benchmark']}: test accuracy {result['test_accuracy']:.3f} in {result['wall_seconds']:.0f} s wall "
        f"({result['train_seconds']:.0f} s training) with {result['backbone']} / {result['strategy']}, "
        f"{result['epochs']} epochs ({result['schedule']} from {result['learning_rate']:g}, {result['image_size']} px), "
        f"{result['images']} images, {result['cpus']} CPUs, load average {result['load'][0]} -> {result['load'][1]}"
        + "".join(f"\n  note: {n}" for n in result["notices"])
    )
