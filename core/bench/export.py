"""`export` benchmark: a flowers model taken to every TensorFlow Lite variant, each one measured.

MobileNetV2 (width 0.35, ImageNet weights) at 224 px, feature extraction (the `quick` preset's
recipe), trained on the first PER_CLASS photos of each class of ../shared/datasets/flowers with
30% of them held out for testing; then `python -m core export RUN --format F` for each TFLite
variant, each in a fresh interpreter as a user would type it, offline and with a fresh Keras home.
Goal (issue 7): full int8 at most 30% of the float32 size, with at most 1.5 points of test
accuracy lost against float32.
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
FLOWERS = PROJECT.parent / "shared" / "datasets" / "flowers"
SHARED_WEIGHTS = PROJECT.parent / "shared" / "keras-cache" / "models"
WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
PER_CLASS = 150
TEST_FRACTION = 0.3  # 45 test photos per class: one photo is 0.44 points of accuracy
EPOCHS = 10
GOAL_SIZE = 0.30
GOAL_POINTS = 1.5


def cli(args: list[str], env: dict[str, str], json_out: bool = True) -> Any:
    proc = subprocess.run([sys.executable, "-m", "core", *args, *(["--json"] if json_out else [])], cwd=PROJECT,
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TransferLabError(f"The benchmark step '{' '.join(args[:2])}' failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout) if json_out else proc.stdout


def flowers_workspace(tmp: Path, keras_cache: str | None, per_class: int, name: str) -> tuple[dict[str, str], dict]:
    """The setup the flowers benchmarks share: the cached MobileNet V2 0.35 weights in a fresh Keras home, an
    offline environment with its own workspace, and `per_class` photos of each flower imported by the CLI.
    Returns (environment, the imported dataset's record)."""
    weights = Path(keras_cache or SHARED_WEIGHTS) / WEIGHTS_FILE
    if not FLOWERS.is_dir() or not weights.is_file():
        raise TransferLabError(f"The {name} benchmark needs {FLOWERS} and {weights}; neither may be missing.")
    home = tmp / "home"
    (home / ".keras" / "models").mkdir(parents=True)
    shutil.copy(weights, home / ".keras" / "models" / WEIGHTS_FILE)
    env = {**os.environ, "HOME": str(home), "TL_WORKSPACE": str(tmp / "workspace"), "TL_OFFLINE": "1"}
    src = tmp / "flowers"
    for folder in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        (src / folder.name).mkdir(parents=True)
        for photo in sorted(folder.glob("*.jpg"))[:per_class]:
            shutil.copy(photo, src / folder.name / photo.name)
    return env, cli(["dataset", "import", str(src), "--name", "flowers"], env)


def run(keras_cache: str | None = None) -> dict[str, Any]:
    """Train the flowers model, export and measure the four TFLite variants; return the figures."""
    with tempfile.TemporaryDirectory(prefix="tl-bench-export-") as tmp:
        env, dataset = flowers_workspace(Path(tmp), keras_cache, PER_CLASS, "export")
        config = json.loads(cli(["config", "--dataset", dataset["id"], "--preset", "quick", "--backbone",
                                  "mobilenet_v2_0.35", "--image-size", "224", "--epochs", str(EPOCHS)], env,
                                 json_out=False))
        config["test_fraction"] = TEST_FRACTION
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))
        started = time.monotonic()
        trained = cli(["train", str(config_path), "--quiet"], env)
        train_wall = time.monotonic() - started
        rows = {}
        for fmt in ("tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8"):
            started = time.monotonic()
            result = cli(["export", trained["id"], "--format", fmt], env)
            rows[fmt] = {**result["check"], "export_seconds": round(time.monotonic() - started, 1)}
        keras_bytes = (Path(env["TL_WORKSPACE"]) / "runs" / trained["id"] / "model.keras").stat().st_size
    int8 = rows["tflite-int8"]
    return {
        "benchmark": "export",
        "command": f"python -m core bench export  (then: python -m core export RUN --format F, F in {', '.join(rows)})",
        "images": sum(dataset["counts"].values()),
        "test_images": int8["n"],
        "backbone": config["backbone"], "image_size": config["image_size"], "strategy": config["strategy"],
        "epochs": config["epochs"],
        "train_wall_seconds": round(train_wall, 1),
        "keras_test_accuracy": trained["test_accuracy"],
        "keras_bytes": keras_bytes,
        "variants": rows,
        "int8_size_vs_float32": int8["size_vs_float32"],
        "int8_points_lost": round(-int8["change_points"], 2),
        "goal_met": int8["size_vs_float32"] <= GOAL_SIZE and -int8["change_points"] <= GOAL_POINTS,
        "cpus": os.cpu_count(),
    }


def describe(result: dict[str, Any]) -> str:
    """The variant table and the verdict against the goal."""
    lines = [
        f"export: {result['backbone']} at {result['image_size']} px, {result['strategy']}, {result['epochs']} epochs on "
        f"{result['images']} flower photos ({result['train_wall_seconds']:.0f} s to train); Keras test accuracy "
        f"{result['keras_test_accuracy']:.3f} on {result['test_images']} test images, model.keras "
        f"{result['keras_bytes'] / 2**20:.2f} MB",
        f"  {'variant':<16}{'size MB':>9}{'of f32':>8}{'accuracy':>10}{'change':>9}{'agree':>8}{'ms/img':>8}",
    ]
    for name, r in result["variants"].items():
        lines.append(f"  {name:<16}{r['bytes'] / 2**20:>9.2f}{r['size_vs_float32']:>8.0%}{r['accuracy']:>10.3f}"
                     f"{r['change_points']:>+9.1f}{r['agreement']:>8.0%}{r['ms_per_image']:>8.2f}")
    lines.append(f"  goal (int8 <= {GOAL_SIZE:.0%} of float32, <= {GOAL_POINTS} points lost): "
                 f"{'met' if result['goal_met'] else 'NOT met'} ({result['int8_size_vs_float32']:.0%}, "
                 f"{result['int8_points_lost']:+.1f} points lost)")
    return "\n".join(lines)
