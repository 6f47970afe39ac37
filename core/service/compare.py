"""The run table of the Compare page: one row of plain numbers per run, read from the run folders.

Nothing here imports TensorFlow: the parameter count is read from the weights file inside
model.keras with h5py, so listing many runs stays fast.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from core.engine import distill, methods
from core.spec import backbones, strategies
from core.store import datasets, runs

def history(run_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch metrics over all phases, from the run's epoch_end events."""
    return [
        {"phase": e.get("phase"), "epoch": e.get("epoch"), **e.get("metrics", {})}
        for e in runs.read_events(run_dir)
        if e.get("type") == "epoch_end"
    ]


def param_count(model_path: Path) -> int | None:
    """Parameters of a saved .keras model (all weights, the optimizer's excluded); None if unreadable."""
    import h5py

    total = 0

    def add(name: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size)

    try:
        with zipfile.ZipFile(model_path) as zf, zf.open("model.weights.h5") as f, h5py.File(f, "r") as h5:
            for group in ("layers", "vars"):
                if group in h5:
                    h5[group].visititems(add)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return total


def _auc(evaluation: dict[str, Any]) -> float | None:
    """eval.json's ROC AUC: a number, or the macro average where it holds several."""
    value = evaluation.get("roc_auc")
    if isinstance(value, dict):
        value = value.get("macro", value.get("macro_ovr"))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def method(info: runs.RunInfo) -> str | None:
    """What a run is, in words: its role beside another run (a pruned copy, a search trial, a companion), else its
    strategy's name; a companion's config names its parent's strategy, which would mislabel it."""
    status = info.status
    if status.get("pruned_from"):
        return "Pruned"
    if status.get("study"):
        return f"Search trial {status.get('trial', 0) + 1}" if isinstance(status.get("trial"), int) else "Search trial"
    if status.get("student_alone_of"):
        return "Student alone (no teacher)"
    if status.get("source_only_of"):
        return "Without adaptation"
    if status.get("baseline_of"):
        return "From scratch (baseline)"
    return strategies.get(info.config.strategy).label if info.config else None


def run_label(info: runs.RunInfo, dataset_names: dict[str, str]) -> str:
    """One line naming a run in pickers, different for any two runs: backbone, method, dataset, accuracy and when."""
    parts = []
    if info.config is not None:
        parts += [backbones.get(info.config.backbone).label, method(info) or "",
                  f"on {dataset_names.get(info.config.dataset_id, info.config.dataset_id)}"]
    accuracy = (info.evaluation or {}).get("accuracy", info.status.get("test_accuracy"))
    if isinstance(accuracy, (int, float)):
        parts.append(f"test accuracy {accuracy:.1%}")
    day, clock = info.id.split("-")[:2]  # run ids start with the time they were made
    parts.append(f"made {day[6:8]}/{day[4:6]} {clock[:2]}:{clock[2:4]}:{clock[4:6]}")
    return " · ".join(p for p in parts if p)


def run_row(info: runs.RunInfo, dataset_names: dict[str, str]) -> dict[str, Any]:
    """One row: what was trained, how long it took, how well it does, how big and fast it is."""
    config, ev, status = info.config, info.evaluation or {}, info.typed_status
    curve = history(info.path)
    val = [h["val_accuracy"] for h in curve if isinstance(h.get("val_accuracy"), (int, float))]
    planned = sum(p.epochs for p in strategies.get(config.strategy).phases(config)) if config else None
    model = info.path / "model.keras"
    return {
        "id": info.id,
        "path": info.path,
        "state": info.state,
        "dataset": dataset_names.get(config.dataset_id, config.dataset_id) if config else None,
        "backbone": backbones.get(config.backbone).label if config else None,
        "strategy": method(info),
        "strategy_id": config.strategy if config else None,
        "image_size": config.image_size if config else None,
        "epochs": len(curve) if curve else planned,
        "train_seconds": status.timings.train_seconds,
        "val_accuracy": max(val) if val else status.figures.val_accuracy,
        "test_accuracy": ev.get("accuracy", status.figures.test_accuracy),
        "macro_f1": (ev.get("macro") or {}).get("f1-score"),
        # Domain adaptation: accuracy on the target domain's held-out images (None: no target, or unlabelled).
        "target_accuracy": (ev.get("target") or {}).get("accuracy", status.figures.target_accuracy),
        # The companion runs (core.store.status.COMPANIONS) written by training.train_and_compare: the
        # from-scratch baseline, with the run's verdict on it (negative transfer), and the source-only run.
        "source_only_run": status.links.companion("source_only"),
        "auc": _auc(ev),
        "params": param_count(model) if model.is_file() else None,
        "size_mb": round(model.stat().st_size / 2**20, 3) if model.is_file() else None,
        "ms_per_image": ev.get("ms_per_image"),
        "baseline_run": status.links.companion("baseline"),
        "transfer_hurt": status.verdicts.transfer_hurt,
        "history": curve,
    }


def table(ws: Path) -> list[dict[str, Any]]:
    """Every run in the workspace, newest first, each from-scratch baseline right after its transfer run."""
    names = {d["id"]: d.get("name", d["id"]) for d in datasets.list_datasets(ws)}
    rows = [run_row(info, names) for info in runs.list_runs(ws)]
    by_id = {r["id"]: r for r in rows}
    baselines = {r["baseline_run"] for r in rows if r["baseline_run"] in by_id}
    ordered: list[dict[str, Any]] = []
    for row in rows:
        if row["id"] in baselines:
            continue
        ordered.append(row)
        base = by_id.get(row["baseline_run"])
        if base is not None:
            row["transfer_hurt"] = transfer_hurt(row, base)
            row["transfer_gain"] = _gain(row, base)
            base["baseline_of"] = row["id"]
            ordered.append(base)
    return ordered


def _gain(row: dict[str, Any], base: dict[str, Any]) -> float | None:
    """Points of best validation accuracy the pretrained start gained over the baseline (the trainer's measure)."""
    a, b = row.get("val_accuracy"), base.get("val_accuracy")
    return None if a is None or b is None else round(100 * (a - b), 2)


def transfer_hurt(row: dict[str, Any], base: dict[str, Any]) -> bool | None:
    """The run's own flag if it wrote one; else whether its best validation accuracy is below the baseline's."""
    if isinstance(row.get("transfer_hurt"), bool):
        return row["transfer_hurt"]
    gain = _gain(row, base)
    return None if gain is None else gain < 0


def distillations(ws: Path) -> list[dict[str, Any]]:
    """Every distilled run's verdict: teacher, student alone (when trained) and distilled student side by side."""
    out = []
    for info in runs.list_runs(ws):
        report = distill.read_report(info.path) if info.config and methods.is_method(info.config, distill.METHOD) else None
        if report:
            out.append({"run": info.id, **report})
    return out
