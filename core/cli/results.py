"""`runs`, `evaluate` and `predict`: what trained runs did and what they say."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.common import show_result
from core.data import texts as data_texts
from core.engine import domain_map, evaluation
from core.errors import TransferLabError
from core.service import verdict
from core.store import runs
from core.store.files import workspace


def cmd_evaluate(args: argparse.Namespace) -> int:
    runs.reconcile(workspace(args.workspace))
    report = evaluation.evaluate(runs.run_path(args.run_id, workspace(args.workspace)))
    brief = {k: v for k, v in report.items() if k != "predictions"}
    if "target" in brief:
        brief["target"] = {k: v for k, v in brief["target"].items() if k != "predictions"}
    rows = "\n".join(f"  {r['class']:<16} precision {r['precision']:.3f}  recall {r['recall']:.3f}  f1 {r['f1']:.3f}  n={r['support']}"
                     for r in report["per_class"])
    target = report.get("target") or {}
    if "accuracy" in target:
        rows += (f"\ntarget domain ({target['dataset_id']}): accuracy {target['accuracy']:.3f}, macro F1 "
                 f"{target['macro']['f1-score']:.3f} on {target['n']} held-out images")
    elif target:
        rows += f"\ntarget domain ({target['dataset_id']}): {target['note']}"
    if getattr(args, "domain_map", False):  # source and target images mapped, before / after adaptation
        maps = domain_map.before_after(runs.run_path(args.run_id, workspace(args.workspace)))
        brief["domain_map"] = {"reading": maps["reading"], **{
            when: m and {k: m[k] for k in ("run", "domain_accuracy", "centroid_ratio", "n_source", "n_target", "layer")}
            for when, m in (("after", maps["after"]), ("before", maps["before"]))}}
        rows += f"\n{maps['reading']}"
    judged = verdict.judge(runs.run_path(args.run_id, workspace(args.workspace)))
    if judged is not None:  # the same verdict the Train page shows: against guessing and the method's baseline
        brief["verdict"] = judged.to_dict()
        rows += f"\nverdict ({judged.level}): {judged.text()}"
    show_result(args, {"id": args.run_id, **brief}, f"test accuracy {report['accuracy']:.3f} on {report['n']} images\n{rows}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    runs.reconcile(workspace(args.workspace))
    run_dir = runs.run_path(args.run_id, workspace(args.workspace))
    images = _texts(args)
    for name in args.images:
        path = Path(name)
        if not path.is_file():
            raise TransferLabError(f"The image '{name}' does not exist; check the path.")
        images.append((name, path.read_bytes()))
    results = evaluation.predict(run_dir, images, top_k=args.top_k)
    lines = []
    for r in results:
        if "error" in r:
            lines.append(r["error"])
        else:
            lines.append(f"{r['file']}: {r['prediction']} (" + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]) + ")")
    show_result(args, results, "\n".join(lines))
    return 0 if all("error" not in r for r in results) else 2


def _texts(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    """Texts to classify: each --text, and each line of each --file (empty lines skipped)."""
    given = [(f"text {i + 1}", text.encode("utf-8")) for i, text in enumerate(args.text or [])]
    for name in args.file or []:
        path = Path(name)
        if not path.is_file():
            raise TransferLabError(f"The file '{name}' does not exist; check the path.")
        lines = data_texts.decode_text(path.read_bytes())[0].splitlines()
        given += [(f"{name}:{n}", line.encode("utf-8")) for n, line in enumerate(lines, 1) if line.strip()]
    if not given and not args.images:
        raise TransferLabError("Give something to classify: image files, --text \"a sentence\" or --file texts.txt.")
    return given


def cmd_runs(args: argparse.Namespace) -> int:
    runs.reconcile(workspace(args.workspace))
    found = runs.list_runs(workspace(args.workspace))
    rows = [{
        "id": r.id, "state": r.state,
        "backbone": r.config.backbone if r.config else None,
        "strategy": r.config.strategy if r.config else None,
        "test_accuracy": r.evaluation.get("accuracy") if r.evaluation else None,
    } for r in found]
    text = "\n".join(f"{r['id']}  {r['state']:<11} {r['backbone'] or '?':<20} {r['strategy'] or '?':<20} "
                     f"{'' if r['test_accuracy'] is None else format(r['test_accuracy'], '.3f')}" for r in rows)
    show_result(args, rows, text or "No runs yet.")
    return 0


def add_evaluate(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `evaluate` command."""
    ev = sub.add_parser("evaluate", parents=[common], help="evaluate a run on its test split")
    ev.add_argument("run_id")
    ev.add_argument("--domain-map", action="store_true",
                    help="for a run with a target dataset: how much source and target images overlap in the model's "
                         "features, after adaptation and before (its source-only baseline), in a sentence")
    ev.set_defaults(func=cmd_evaluate)


def add_predict(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `predict` command."""
    pr = sub.add_parser("predict", parents=[common], help="classify images or texts with a trained run")
    pr.add_argument("run_id")
    pr.add_argument("images", nargs="*", help="image (or other) files to classify")
    pr.add_argument("--text", action="append", help="a text to classify (repeatable), for a run trained on texts")
    pr.add_argument("--file", action="append", help="a UTF-8 text file, one text to classify per line")
    pr.add_argument("--top-k", type=int, default=3)
    pr.set_defaults(func=cmd_predict)


def add_runs(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `runs` command."""
    sub.add_parser("runs", parents=[common], help="list runs").set_defaults(func=cmd_runs)
