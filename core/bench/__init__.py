"""Benchmarks: whole commands timed end to end, in a fresh workspace and Keras home.

`quick-shapes`: the first-time flow offline (TL_OFFLINE=1, an empty Keras cache unless one is
given): `dataset sample shapes`, `config --preset quick`, `train`, each a fresh interpreter, as a
user would type them. Goal: >= 90% test accuracy within 3 minutes on a 2-core CPU.

`import`: importing the flower photos of ../shared/datasets/flowers (a folder of 5 class folders),
first 500 of them, then all 3,000, then all of them as one zip; each import runs in a fresh
interpreter that reports its images per second and its peak memory (max RSS), so memory that
grows with the dataset shows as a difference between the rows. Goal: >= 150 images/s on 2 cores
and the same peak memory at 500 and 3,000 images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from core.errors import TransferLabError

PROJECT = Path(__file__).resolve().parent.parent


def _cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "core", *args, "--json"], cwd=PROJECT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TransferLabError(f"The benchmark step '{' '.join(args[:2])}' failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def run(name: str, keras_cache: str | None = None) -> dict[str, Any]:
    """Run a named benchmark and return its figures."""
    if name == "import":
        return run_import()
    if name == "train":
        from core import bench_train

        return bench_train.run()
    if name == "export":
        from core import bench_export

        return bench_export.run(keras_cache)
    if name != "quick-shapes":
        raise TransferLabError(f"There is no benchmark '{name}'; available: quick-shapes, import.")
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        home = Path(tmp) / "home"
        models = home / ".keras" / "models"
        models.mkdir(parents=True)
        if keras_cache:
            for f in Path(keras_cache).glob("*.h5"):
                shutil.copy(f, models / f.name)
        ws = Path(tmp) / "workspace"
        env = {**os.environ, "HOME": str(home), "TL_WORKSPACE": str(ws), "TL_OFFLINE": "1"}
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
    }


FLOWERS = PROJECT.parent / "shared" / "datasets" / "flowers"
_IMPORT_CHILD = """
import json, resource, sys, time
from pathlib import Path
from core import datasets
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
info = datasets.import_path(sys.argv[1], Path(sys.argv[2]))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images = sum(info["counts"].values())
print(json.dumps({"images": images, "skipped": len(info["skipped"]), "seconds": round(seconds, 2),
                  "images_per_second": round(images / seconds, 1), "rss_before_import_mb": round(before / 1024, 1),
                  "peak_rss_mb": round(peak / 1024, 1)}))
"""


def _import_once(src: Path, ws: Path, label: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _IMPORT_CHILD, str(src), str(ws)], cwd=PROJECT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise TransferLabError(f"The import benchmark step '{label}' failed: {proc.stderr.strip()[-400:]}")
    return {"source": label, **json.loads(proc.stdout)}


def run_import(source: Path = FLOWERS, small: int = 500) -> dict[str, Any]:
    """Import `small` photos, then all of them, then all as a zip, each in a fresh interpreter; speed and peak memory."""
    photos = sorted(source.glob("*/*.jpg")) if source.is_dir() else []
    if not photos:
        raise TransferLabError(f"The import benchmark needs the flower photos in {source}; that folder is missing or empty.")
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp:
        subset = Path(tmp) / "subset"
        classes = sorted({p.parent.name for p in photos})
        for photo in (p for c in classes for p in sorted(source.glob(f"{c}/*.jpg"))[: small // len(classes)]):
            (subset / photo.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, subset / photo.parent.name / photo.name)
        archive = Path(tmp) / "flowers.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for photo in photos:
                zf.write(photo, f"flowers/{photo.parent.name}/{photo.name}")
        rows = [
            _import_once(subset, Path(tmp) / "ws", f"folder, {len(list(subset.glob('*/*.jpg')))} photos"),
            _import_once(source, Path(tmp) / "ws", f"folder, {len(photos)} photos"),
            _import_once(archive, Path(tmp) / "ws", f"zip, {len(photos)} photos"),
        ]
    return {"benchmark": "import", "rows": rows, "cpus": os.cpu_count(),
            "peak_rss_growth_mb": round(rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1)}


def describe(result: dict[str, Any]) -> str:
    """One readable paragraph of benchmark figures."""
    if result["benchmark"] == "train":
        from core import bench_train

        return bench_train.describe(result)
    if result["benchmark"] == "export":
        from core import bench_export

        return bench_export.describe(result)
    if result["benchmark"] == "import":
        return "\n".join(
            [f"import on {result['cpus']} CPUs:"]
            + [f"  {r['source']}: {r['images_per_second']:.0f} images/s ({r['images']} in {r['seconds']:.1f} s), "
               f"peak memory {r['peak_rss_mb']:.0f} MB ({r['rss_before_import_mb']:.0f} MB before the import)"
               for r in result["rows"]]
            + [f"  peak memory growth from the small to the full set: {result['peak_rss_growth_mb']:+.0f} MB"]
        )
    return (
        f"{result['benchmark']}: test accuracy {result['test_accuracy']:.3f} in {result['wall_seconds']:.0f} s wall "
        f"({result['train_seconds']:.0f} s training) with {result['backbone']} / {result['strategy']}, "
        f"{result['epochs']} epochs, {result['images']} images, {result['cpus']} CPUs"
        + "".join(f"\n  note: {n}" for n in result["notices"])
    )
