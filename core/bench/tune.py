"""`bench tune`: a 16-trial search over the head against one default run, on shapes and on flowers.

Data: the `shapes` sample (4 x 150) and 150 flowers per class (5 x 150) from ../shared/datasets/flowers.
Backbone: MobileNetV2 0.35 with genuine ImageNet weights (from ../shared/keras-cache/models, or
--keras-cache), frozen, 128 px, the quick preset's head and 10 epochs, augmentation off so that both
the default run and every trial train on cached features. For each dataset, in fresh workspaces
(each with a cold feature cache), as commands a user would type:

- default: `python -m core train CONFIG` (the quick preset's settings), timed end to end;
- study: `python -m core tune CONFIG --trials 16` searching lr, dropout, hidden units and label
  smoothing (median pruner), timed end to end; its best trial (lowest validation loss);
- finder: `python -m core lr-find CONFIG` on the study's workspace (warm cache).

The load average before and after is recorded: on a shared machine other work slows either timing.
A study's trials that train the head alone share the backbone, features and latency (core.engine.trials).

Goals: study seconds <= 3 x default seconds; at least one trial pruned; the best trial's test
accuracy >= the default run's; the finder's suggestion next to the best trial's learning rate.
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

from core.data import importer, samples
from core.errors import TransferLabError
from core.spec.config import preset

PROJECT = Path(__file__).resolve().parents[2]
SHARED = PROJECT.parent / "shared"
FLOWERS = SHARED / "datasets" / "flowers"
KERAS_CACHE = SHARED / "keras-cache" / "models"
TRIALS, PER_CLASS, BACKBONE = 16, 150, "mobilenet_v2_0.35"


def _cli(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", *args, "--json"], cwd=PROJECT, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise TransferLabError(f"The benchmark step '{' '.join(args[:1])}' failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout), wall


def _flowers(dest: Path) -> Path:
    for folder in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        (dest / folder.name).mkdir(parents=True)
        for photo in sorted(folder.glob("*.jpg"))[:PER_CLASS]:
            shutil.copyfile(photo, dest / folder.name / photo.name)
    return dest


def _workspace(tmp: Path, name: str, cache: Path, make) -> tuple[dict[str, str], dict[str, Any]]:
    home = tmp / name / "home"
    models = home / ".keras" / "models"
    models.mkdir(parents=True)
    for f in cache.glob("*.h5"):
        shutil.copy(f, models / f.name)
    ws = tmp / name / "workspace"
    env = {**os.environ, "HOME": str(home), "TL_WORKSPACE": str(ws), "TL_OFFLINE": "1"}
    return env, make(ws)


def _one(tmp: Path, label: str, cache: Path, make, trials: int) -> dict[str, Any]:
    env_a, info = _workspace(tmp, f"{label}-default", cache, make)
    env_b, info_b = _workspace(tmp, f"{label}-study", cache, make)
    paths = []
    for ds in (info, info_b):
        config = preset("quick", ds["id"], backbone=BACKBONE, augment={"flip": False, "rotate": False})
        paths.append(tmp / f"{label}-{len(paths)}.json")
        paths[-1].write_text(config.to_json())
    default, default_wall = _cli(["train", str(paths[0]), "--quiet"], env_a)
    study, study_wall = _cli(["tune", str(paths[1]), "--trials", str(trials), "--quiet"], env_b)
    shown, _ = _cli(["study", "show", study["id"]], env_b)
    finder, _ = _cli(["lr-find", str(paths[1])], env_b)
    best = study["best"]
    rows = shown["trials"]
    return {
        "images": sum(info["counts"].values()),
        "default_seconds": round(default_wall, 1),
        "default_test_accuracy": default["test_accuracy"],
        "study_seconds": round(study_wall, 1),
        "ratio": round(study_wall / default_wall, 2),
        "trials": len(rows),
        "pruned": sum(1 for r in rows if r["state"] == "pruned"),
        "pruned_at_epochs": [r["pruned_epoch"] for r in rows if r["state"] == "pruned"],
        "complete": sum(1 for r in rows if r["state"] == "complete"),
        "best_trial": best["number"] if best else None,
        "best_params": best["params"] if best else None,
        "best_val_loss": best["value"] if best else None,
        "best_test_accuracy": best["test_accuracy"] if best else None,
        "max_trial_test_accuracy": max((r["test_accuracy"] or 0.0) for r in rows),
        "lr_finder_suggestion": finder["suggestion"],
        "lr_finder_batches": finder["batches"],
        "lr_finder_seconds": finder["seconds"],
        "best_trial_lr": best["params"].get("lr") if best else None,
        "goals": {
            "study_within_3x": study_wall <= 3 * default_wall,
            "at_least_one_pruned": any(r["state"] == "pruned" for r in rows),
            "best_at_least_default": bool(best) and best["test_accuracy"] >= default["test_accuracy"],
        },
    }


def run(keras_cache: str | None = None, trials: int = TRIALS, only: tuple[str, ...] = ("shapes", "flowers")) -> dict[str, Any]:
    """Both datasets (or those in `only`), `trials` trials each; their figures."""
    cache = Path(keras_cache) if keras_cache else KERAS_CACHE
    if not any(cache.glob("mobilenet_v2_*0.35_224_no_top.h5")):
        raise TransferLabError(f"The tune benchmark needs MobileNetV2 0.35's ImageNet weights in {cache}; "
                               "pass --keras-cache FOLDER.")
    if not FLOWERS.is_dir():
        raise TransferLabError(f"The tune benchmark needs the flower photos in {FLOWERS}.")
    out: dict[str, Any] = {"benchmark": "tune", "trials": trials, "backbone": BACKBONE, "cpus": os.cpu_count(),
                           "setup": f"{BACKBONE} ImageNet, frozen, 128 px, quick preset head, 10 epochs (patience 3), "
                                    "no augmentation; search lr, dropout, hidden_units, label_smoothing; median pruner"}
    out["load_average_before"] = [round(v, 2) for v in os.getloadavg()]  # a shared machine skews both timings
    with tempfile.TemporaryDirectory(prefix="tl-bench-tune-") as tmp_name:
        tmp = Path(tmp_name)
        if "shapes" in only:
            out["shapes"] = _one(tmp, "shapes", cache, lambda ws: samples.import_sample("shapes", ws), trials)
        if "flowers" in only:
            src = _flowers(tmp / "flowers150")
            out["flowers"] = _one(tmp, "flowers", cache, lambda ws: importer.import_path(src, ws, name="flowers150"),
                                  trials)
    out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return out


def describe(result: dict[str, Any]) -> str:
    """The figures in a few lines."""
    load = "".join(f", load average {result[k][0]:.1f} {k.rsplit('_', 1)[1]}" for k in ("load_average_before",
                                                                                       "load_average_after") if k in result)
    lines = [f"tune benchmark: {result['trials']} trials, {result['setup']}, {result['cpus']} CPUs{load}"]
    for name in [n for n in ("shapes", "flowers") if n in result]:
        r = result[name]
        lines.append(
            f"  {name} ({r['images']} images): study {r['study_seconds']:.0f} s vs one default run {r['default_seconds']:.0f} s "
            f"= {r['ratio']:.1f}x; {r['pruned']} pruned (at epochs {r['pruned_at_epochs']}), {r['complete']} complete; "
            f"best trial #{r['best_trial']} test accuracy {r['best_test_accuracy']:.3f} vs default "
            f"{r['default_test_accuracy']:.3f}; LR finder {r['lr_finder_suggestion']:.2e} vs best trial's lr "
            f"{r['best_trial_lr'] if r['best_trial_lr'] is None else format(r['best_trial_lr'], '.2e')}"
        )
    return "\n".join(lines)
