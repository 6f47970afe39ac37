"""Command line: python -m core ... (the same core functions the pages call).

Exit 0 on success; 2 on bad input with one plain sentence on stderr; 1 on an internal error.
Everything below is imported at the top: no core module imports TensorFlow until it is used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from core import bench, settings
from core.data import domains, health, importer, samples, splits
from core.data.limits import ImportLimits
from core.engine import domain_map, evaluation, lrfind, modeling, networks, training, transfer
from core.errors import ConfigError, TransferLabError, WeightsUnavailable
from core.service import hosting, studies, tuner, verdict
from core.ship import codegen, export, pruning, serving
from core.spec import backbones, config as config_mod, strategies
from core.store import datasets, runs, sources
from core.store.files import workspace


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one sentence, exit 2, like every bad input
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _print(args: argparse.Namespace, text: str, end: str = "\n") -> None:
    """A command's own output: the real stdout (library prints are routed to stderr while a command runs)."""
    print(text, end=end, file=getattr(args, "stdout", None) or sys.stdout, flush=True)


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    _print(args, json.dumps(data, indent=2) if args.json else text)


def _dataset_summary(info: dict) -> str:
    counts = ", ".join(f"{c}: {n}" for c, n in info["counts"].items())
    lines = [info["id"], f"  {sum(info['counts'].values())} images in {len(info['classes'])} classes ({counts})"]
    if not info["classes"]:  # a target import: unlabelled images from where the model will be used
        lines[1] = f"  {len(info.get('unlabeled', []))} unlabelled images from where the model will be used (no classes)"
        lines.append(f"  {health.unlabelled_report(info)['note']}")
    if info["skipped"]:
        lines.append(f"  {len(info['skipped'])} file(s) skipped:")
        lines += [f"    {s['file']}: {s['reason']}" for s in info["skipped"][:20]]
    lines += [f"  warning: {w}" for w in info["warnings"]]
    return "\n".join(lines)


def _import_limits(args: argparse.Namespace) -> ImportLimits:
    """The import caps: TL_IMPORT_* settings, then any --max-* flags."""
    limits = ImportLimits.from_env()
    given = {"max_members": args.max_members, "max_ratio": args.max_ratio, "max_pixels": args.max_pixels,
             "max_file_bytes": args.max_file_mb and int(args.max_file_mb * 2**20),
             "max_total_bytes": args.max_total_mb and int(args.max_total_mb * 2**20)}
    for key, value in given.items():
        if value is not None and value <= 0:
            raise TransferLabError(f"--{key.replace('_bytes', '_mb').replace('_', '-')} must be a positive number.")
    return replace(limits, **{k: v for k, v in given.items() if v is not None})


def _import_progress() -> Any:
    """A one-line progress display on stderr when it is a terminal; None otherwise."""
    if not sys.stderr.isatty():
        return None
    return lambda fraction, text: print(f"\r{fraction:4.0%} {text}\033[K", end="\n" if fraction >= 1 else "",
                                        file=sys.stderr, flush=True)


def cmd_dataset(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    if args.dataset_cmd == "import":
        info = importer.import_path(args.src, ws, name=args.name, limits=_import_limits(args),
                                    unlabeled=args.unlabeled, progress=_import_progress(),
                                    role="target" if args.target else "source")
    elif args.dataset_cmd == "sample":
        info = samples.import_sample(args.name, ws, progress=_import_progress())
    elif args.dataset_cmd == "show":
        info = datasets.load_dataset(args.dataset_id, ws)
        report = health.health_report(info)
        _out(args, {"id": info["id"], "name": info["name"], "source": info["source"], "classes": info["classes"],
                    "warnings": info["warnings"], "skipped": info["skipped"], "report": report},
             _dataset_summary(info) + f"\n  imbalance ratio {report['imbalance_ratio']}; duplicates: "
             f"{report['duplicates']['within']} within classes, {report['duplicates']['across']} across classes")
        return 0
    elif args.dataset_cmd == "delete":
        datasets.dataset_path(args.dataset_id, ws)
        if not args.yes:
            raise TransferLabError(f"Deleting '{args.dataset_id}' cannot be undone; add --yes to confirm.")
        datasets.delete_dataset(args.dataset_id, ws)
        _out(args, {"id": args.dataset_id, "deleted": True}, f"deleted {args.dataset_id}")
        return 0
    else:
        found = datasets.list_datasets(ws)
        _out(args, [{"id": d["id"], "name": d["name"], "counts": d["counts"]} for d in found],
             "\n".join(f"{d['id']}  {sum(d['counts'].values())} images, {len(d['classes'])} classes" if d["classes"]
                       else f"{d['id']}  {len(d.get('unlabeled', []))} unlabelled images (a target)" for d in found)
             or "No datasets yet.")
        return 0
    brief = {k: info[k] for k in ("id", "name", "classes", "counts", "skipped", "warnings")}
    brief |= {"predefined_split": bool(info.get("predefined_split")), "unlabeled": len(info.get("unlabeled", []))}
    brief |= {"role": info.get("role", "source")}
    _out(args, brief, _dataset_summary(info))
    return 0


def _backbone_row(spec: backbones.BackboneSpec) -> dict[str, Any]:
    return {
        "id": spec.id, "label": spec.label, "family": spec.family, "params_m": spec.params_m,
        "base_params_m": spec.base_params_m, "size_mb": spec.size_mb, "imagenet_top1": spec.top1,
        "gflops": spec.gflops, "ms_per_image": spec.ms_per_image, "preprocessing": spec.preprocessing,
        "default_size": spec.default_size, "min_size": spec.min_size, "max_size": spec.max_size,
        "weight_sizes": list(spec.weight_sizes), "weights": list(spec.weights_options),
        "groups": [g["name"] for g in spec.groups],
        "tiers": [t for t in backbones.TIERS if backbones.in_tier(spec, t)],
        "imagenet_cached": backbones.cached_weights(spec, spec.default_size) is not None,
    }


def cmd_backbones(args: argparse.Namespace) -> int:
    if args.hub:
        rows = [{"id": backbones.hub_id(m.handle), "label": m.label, "size": m.size, "note": m.note}
                for m in backbones.HUB_MODELS]
        _out(args, rows, "\n".join(f"{r['label']:<44} {r['id']}\n{'':<44} {r['note']}" for r in rows))
        return 0
    if args.runs:
        found = sources.run_sources(workspace(args.workspace))
        rows = [{"run_id": s.run_id, "backbone": s.backbone, "dataset_id": s.dataset_id, "classes": s.classes,
                 "test_accuracy": s.test_accuracy, "early_checkpoint": s.has_early_checkpoint} for s in found]
        _out(args, rows, "\n".join(s.label for s in found) or "No finished runs in this workspace yet.")
        return 0
    rows = [_backbone_row(s) for s in backbones.BACKBONES.values() if backbones.in_tier(s, args.tier)]
    text = "\n".join(
        f"{r['id']:<22} {r['params_m']:>7.2f}M params  top-1 {r['imagenet_top1'] or '-':>5}  "
        f"{r['gflops']:>6.2f} GFLOPs ~{r['ms_per_image']:>6.0f} ms/image  {len(r['groups'])} groups  "
        f"{'cached' if r['imagenet_cached'] else ('no pretraining' if r['weights'] == ['none'] else 'download')}"
        for r in rows
    )
    _out(args, rows, text)
    return 0


def _kit(args: argparse.Namespace) -> list[tuple[Any, int]]:
    """The backbones a weights command is about: those named (at --size or their default), else the offline kit."""
    if args.backbones:
        return [(backbones.get(b), args.size or backbones.get(b).default_size) for b in args.backbones]
    return [(backbones.get(b), args.size or size) for b, size in config_mod.offline_kit()]


def cmd_weights(args: argparse.Namespace) -> int:
    kit = _kit(args)
    if args.weights_cmd == "list":
        rows = [{"backbone": spec.id, "label": spec.label, "image_size": size,
                 "ready": backbones.cached_weights(spec, size) is not None} for spec, size in kit]
        _out(args, rows, "\n".join(f"{r['backbone']:<22} {r['image_size']:>4} px  "
                                   f"{'ready' if r['ready'] else 'not on this computer'}" for r in rows))
        return 0
    rows = []
    for spec, size in kit:
        path, fetched = networks.download_weights(spec, size, progress=None if args.json else _import_progress())
        rows.append({"backbone": spec.id, "image_size": size, "file": str(path), "downloaded": fetched})
    _out(args, rows, "\n".join(f"{r['backbone']:<22} {'downloaded' if r['downloaded'] else 'already here'}: {r['file']}"
                               for r in rows))
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    rows = [{"id": s.id, "label": s.label, "sentence": s.sentence, "use_when": s.use_when,
             "starts_from": s.forced_weights or "your choice", "settings": list(s.settings)}
            for s in strategies.STRATEGIES.values()]
    _out(args, rows, "\n".join(f"{r['id']:<20} {r['sentence']}\n{'':<20} Use it when: {r['use_when']}" for r in rows))
    return 0


# config flag -> RunConfig field, for the flags that are copied as they are.
_CONFIG_FLAGS = {
    "backbone": "backbone", "strategy": "strategy", "weights": "weights", "epochs": "epochs",
    "image_size": "image_size", "batch_size": "batch_size", "learning_rate": "learning_rate",
    "fine_tune_epochs": "fine_tune_epochs", "fine_tune_lr": "fine_tune_learning_rate",
    "fine_tune_layers": "fine_tune_layers", "fine_tune_unit": "fine_tune_unit", "optimizer": "optimizer",
    "schedule": "schedule", "label_smoothing": "label_smoothing", "class_weights": "class_weights",
    "patience": "patience", "seed": "seed", "source_run": "source_run",
    "target_dataset": "target_dataset_id", "adapt_weight": "adapt_weight", "adapt_loss": "adapt_loss",
    "target_labeled_per_class": "target_labeled_per_class",
}
_CONFIG_FLAGS.update({"source_backbone": "source_backbone", "temperature": "temperature",
                      "distill_weight": "distill_weight"})  # layer_transfer and distill
_HEAD_FLAGS = ("pooling", "dropout", "hidden_units", "l2")


def cmd_config(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    datasets.dataset_path(args.dataset, ws)
    overrides: dict[str, Any] = {k: getattr(args, f) for f, k in _CONFIG_FLAGS.items() if getattr(args, f) is not None}
    if args.hub:
        overrides["backbone"] = backbones.hub_id(args.hub)
    strategy = strategies.STRATEGIES.get(args.strategy or "")
    if strategy and strategy.source and args.source_run and "backbone" not in overrides:
        # Weights from an earlier run fit only that run's backbone.
        overrides["backbone"] = runs.load_config(runs.run_path(args.source_run, ws)).backbone
    chosen = overrides.get("backbone")
    if chosen is not None and (chosen in backbones.BACKBONES or backbones.is_hub(chosen)) and args.image_size is None:
        # Keep the preset's image size where the backbone allows it.
        spec = backbones.get(chosen)
        size = config_mod.PRESETS[args.preset]["image_size"]
        overrides["image_size"] = min(max(size, spec.min_size), spec.max_size)
    if strategy and strategy.forced_weights and args.weights is None:
        overrides["weights"] = strategy.forced_weights
    if chosen is not None and (chosen in backbones.BACKBONES or backbones.is_hub(chosen)) and args.weights is None:
        options = backbones.get(chosen).weights_options
        if "weights" not in overrides and len(options) == 1:
            overrides["weights"] = options[0]
    if strategy and strategy.min_fine_tune_epochs and args.fine_tune_epochs is None:
        overrides.setdefault("fine_tune_epochs", max(strategy.min_fine_tune_epochs,
                                                     config_mod.PRESETS[args.preset].get("fine_tune_epochs", 3)))
    head = {f: getattr(args, f) for f in _HEAD_FLAGS if getattr(args, f) is not None}
    if head:
        overrides["head"] = {**config_mod.PRESETS[args.preset].get("head", {}), **head}
    if args.no_augment:
        overrides["augment"] = {k: False for k in asdict(config_mod.AugmentConfig())}
    if args.augment_views is not None:
        overrides["augment_views"] = args.augment_views
    if args.compare_scratch:
        overrides["compare_scratch"] = True
    if args.mixed_precision:
        overrides["mixed_precision"] = True
    if args.compare_student_alone:
        overrides["compare_student_alone"] = True
    if args.compare_source_only:
        overrides["compare_source_only"] = True
    cfg = config_mod.preset(args.preset, args.dataset, **overrides)
    if cfg.target_dataset_id:  # refused or explained before anything trains
        for message in domains.check_target(datasets.load_dataset(cfg.dataset_id, ws),
                                            datasets.load_dataset(cfg.target_dataset_id, ws)):
            print(f"note: {message}", file=sys.stderr)
    _print(args, cfg.to_json())
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    info = datasets.load_dataset(args.dataset, ws)
    everyday = {"yes": True, "no": False, "unsure": None}[args.everyday]
    cached = [s.id for s in backbones.BACKBONES.values() if backbones.cached_weights(s, s.default_size)]
    rec = strategies.recommend(splits.train_counts(info), everyday, cached)
    _out(args, {**asdict(rec), "overrides": rec.overrides()}, rec.reason)
    return 0


def _read_config(name: str) -> config_mod.RunConfig:
    """A config file written by `python -m core config` (or by hand)."""
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"The config file '{path}' does not exist; create one with 'python -m core config'.")
    return config_mod.RunConfig.from_json(path.read_text(encoding="utf-8"))


def cmd_code(args: argparse.Namespace) -> int:
    cfg = _read_config(args.config)
    ws = workspace(args.workspace)
    script = codegen.training_script(cfg, str(datasets.dataset_path(cfg.dataset_id, ws)), ws=ws)
    if args.out:
        Path(args.out).write_text(script, encoding="utf-8")
        _print(args, args.out)
    else:
        _print(args, script, end="")
    return 0


def cmd_sees(args: argparse.Namespace) -> int:
    backbones.check_id(args.backbone)
    images = []
    for name in args.images:
        if not Path(name).is_file():
            raise TransferLabError(f"The image '{name}' does not exist; check the path.")
        images.append(Path(name).read_bytes())
    guesses = modeling.pretrained_guesses(args.backbone, images)
    rows = [{"file": name, "top": top} for name, top in zip(args.images, guesses)]
    _out(args, rows, "\n".join(f"{r['file']}: " + ", ".join(f"{t['label']} {t['probability']:.0%}" for t in r["top"])
                               for r in rows))
    return 0


def _progress_listener(quiet: bool):
    tty = sys.stderr.isatty()

    def listen(event: Any) -> None:
        if quiet:
            return
        kind = event.type
        if kind == "notice":
            print(f"note: {event.message}", file=sys.stderr)
        elif kind == "phase_start":
            print(f"phase {event.index}/{event.phases}: {event.phase} ({event.epochs} epochs, "
                  f"{event.trainable_params:,} trainable parameters)", file=sys.stderr)
        elif kind == "batch_end" and tty:
            print(f"\r  epoch {event.epoch} batch {event.batch}/{event.steps} loss {event.loss:.4f}", end="", file=sys.stderr)
        elif kind == "epoch_end":
            m = event.metrics
            print(("\r" if tty else "") + f"  epoch {event.epoch}/{event.epochs}: loss {m.get('loss', 0):.4f} "
                  f"acc {m.get('accuracy', 0):.3f} val_loss {m.get('val_loss', 0):.4f} "
                  f"val_acc {m.get('val_accuracy', 0):.3f} ({event.seconds:.1f}s)", file=sys.stderr)
        elif kind == "phase_end" and event.stopped_early:
            print(f"  stopped early after {event.epochs_run} epochs (validation loss stopped improving)", file=sys.stderr)

    return listen


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _read_config(args.config)
    ws = workspace(args.workspace)
    refusal = transfer.offline_refusal(cfg)  # the Train page's refusal, before a run folder exists
    if refusal:
        raise WeightsUnavailable(refusal)
    health.check_trainable(datasets.load_dataset(cfg.dataset_id, ws))
    run_dir = runs.create_run(cfg, ws)
    print(f"run {run_dir.name}", file=sys.stderr)
    result = training.train_and_compare(cfg, run_dir, listener=_progress_listener(args.quiet), distribute=args.distribute)
    if "transfer_hurt" in result and not args.quiet:
        word = "hurt" if result["transfer_hurt"] else "helped"
        print(f"transfer {word}: the from-scratch baseline {result['baseline_run']} reached validation accuracy "
              f"{result['baseline_val_accuracy']:.3f} against {result['val_accuracy']:.3f}", file=sys.stderr)
    if result.get("adaptation_helped") is not None and not args.quiet:
        word = "helped" if result["adaptation_helped"] else "did not help"
        print(f"adaptation {word}: target accuracy {result['target_accuracy']:.3f} against "
              f"{result['source_only_target_accuracy']:.3f} for the source-only baseline {result['source_only_run']}",
              file=sys.stderr)
    elif result.get("source_only_run") and result.get("target_accuracy") is None and not args.quiet:
        print(f"adaptation cannot be judged on accuracy: the target has no labels; compare the two kinds of images' "
              f"overlap on the Predictions page or with 'python -m core evaluate {run_dir.name} --domain-map' "
              f"(source-only baseline {result['source_only_run']})", file=sys.stderr)
    _out(args, {"id": run_dir.name, **result}, run_dir.name)
    return 0 if result["state"] == "done" else 1


def cmd_lr_find(args: argparse.Namespace) -> int:
    cfg = _read_config(args.config)
    tty = sys.stderr.isatty()

    def show(i: int, n: int, lr: float, loss: float) -> None:
        if tty:
            print(f"\r  batch {i}/{n} rate {lr:.2e} smoothed loss {loss:.4f}", end="", file=sys.stderr)

    out = lrfind.find(cfg, workspace(args.workspace), num_iter=args.batches, progress=show)
    if tty:
        print(file=sys.stderr)
    _out(args, out, f"suggested learning rate {out['suggestion']:.2e} (valley rule, {out['batches']} batches"
                    f"{', stopped when the loss passed 4x its minimum' if out['stopped_early'] else ''}"
                    f"{', on cached features' if out['on_features'] else ''})")
    return 0


def _trial_line(r: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
    value = "" if r["value"] is None else f"val_loss {r['value']:.4f}"
    acc = "" if r["val_accuracy"] is None else f" val_acc {r['val_accuracy']:.3f}"
    pruned = f" (after epoch {r['pruned_epoch']})" if r["pruned_epoch"] else ""
    secs = "" if r["seconds"] is None else f" {r['seconds']:.0f}s"
    return f"  #{r['number']:<3} {r['state']:<8}{pruned} {value}{acc}{secs}  {r['run_id'] or ''}  {params}"


def cmd_tune(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    split = lambda text: [t.strip() for t in text.split(",") if t.strip()] if text else None  # noqa: E731
    cfg = _read_config(args.config) if args.config else None
    if args.join:
        if not args.study:
            raise ConfigError("--join needs --study ID (the study to work on).")
        record = studies.join(args.study, ws, cfg, args.storage)
        study_id = record["id"]
    else:
        if args.study:
            raise ConfigError("--study names a study to join; add --join, or leave --study out to start a new one.")
        if cfg is None:
            raise ConfigError("tune needs a config file (from 'python -m core config'), or --study ID --join.")
        trials = args.trials if args.trials is not None or args.minutes is not None else studies.DEFAULT_TRIALS
        study_id = studies.create(cfg, ws, trials=trials, minutes=args.minutes, search=split(args.search),
                                  backbone_ids=split(args.backbones), storage=args.storage)
    print(f"study {study_id}", file=sys.stderr)
    listener = _progress_listener(True)
    show = (lambda row: print(_trial_line(row), file=sys.stderr)) if not args.quiet else None
    result = tuner.work(study_id, ws, listener=listener, trials=args.trials if args.join else None,
                        minutes=args.minutes if args.join else None, on_trial=show)
    best = result["best"]
    text = f"study {study_id}: " + (f"best trial #{best['number']} (run {best['run_id']}), validation loss "
                                     f"{best['value']:.4f}, {best['params']}" if best else "no trial finished")
    _out(args, result, text)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    if args.study_cmd == "list":
        rows = studies.list_studies(ws)
        _out(args, rows, "\n".join(f"{r['id']}  {r['dataset_id']}  {','.join(r['space'])}  job: {r['job']}" for r in rows)
             or "No studies yet.")
        return 0
    if args.study_cmd == "cancel":
        studies.cancel(args.study_id, ws)
        _out(args, {"id": args.study_id, "cancel_requested": True}, f"asked study {args.study_id} to stop")
        return 0
    info = studies.show(args.study_id, ws)
    counts = ", ".join(f"{n} {k}" for k, n in info["counts"].items() if n)
    head = f"{info['id']} on {info['dataset_id']}: searches {', '.join(info['space'])}; {counts or 'no trials yet'}"
    _out(args, info, "\n".join([head, *(_trial_line(r) for r in info["trials"])]))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    run_dir = runs.run_path(args.run_id, ws)
    runs.reconcile(ws)  # a run whose process died (killed, power cut) reads as interrupted
    runs.check_resumable(run_dir)
    runs.cancel_file(run_dir).unlink(missing_ok=True)
    result = training.run(runs.load_config(run_dir), run_dir, listener=_progress_listener(args.quiet), resume=True)
    _out(args, {"id": run_dir.name, **result}, run_dir.name)
    return 0 if result["state"] == "done" else 1


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
    _out(args, {"id": args.run_id, **brief}, f"test accuracy {report['accuracy']:.3f} on {report['n']} images\n{rows}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    runs.reconcile(workspace(args.workspace))
    run_dir = runs.run_path(args.run_id, workspace(args.workspace))
    images = []
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
    _out(args, results, "\n".join(lines))
    return 0 if all("error" not in r for r in results) else 2


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
    _out(args, rows, text or "No runs yet.")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    ttl = None if args.ttl_hours is None else args.ttl_hours * 3600
    removed = hosting.sweep(workspace(args.workspace), ttl=ttl)
    _out(args, removed, f"Removed {len(removed)} expired session workspace(s).")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    runs.reconcile(workspace(args.workspace))
    run_dir = runs.run_path(args.run_id, workspace(args.workspace))
    path = export.export(run_dir, args.format)
    if args.out and Path(args.out).resolve() != path.parent.resolve():
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = Path(shutil.copy2(path, out / path.name))
    result: dict[str, Any] = {"id": args.run_id, "format": args.format, "path": str(path), "bytes": path.stat().st_size}
    text = f"{path} ({path.stat().st_size / 2**20:.2f} MB)"
    if args.format in export.TFLITE_IDS:
        # Every TFLite file is measured on the test split before anyone relies on it.
        check = export.report(run_dir, [args.format])
        row = check["variants"][args.format]
        result["check"] = {"n": check["n"], "keras_accuracy": check["keras"]["accuracy"], **row}
        text += (f"\n  test accuracy {row['accuracy']:.3f} on {check['n']} images ({row['change_points']:+.1f} points "
                 f"against float32), same top class as the Keras model on {row['agreement']:.0%} of them, "
                 f"{row['ms_per_image']:.2f} ms per image, {row['size_vs_float32']:.0%} of the float32 size")
    _out(args, result, text)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise TransferLabError(f"--port {args.port} is not a port number; give one from 1 to 65535 (0: any free one).")
    ws = workspace(args.workspace)
    run_ids = [args.run_id, *(args.run or [])]
    names = args.name or []
    if len(names) > len(run_ids):
        raise TransferLabError(f"{len(names)} names for {len(run_ids)} run(s): give at most one --name per run, in order.")
    pairs = [(runs.run_path(r, ws), names[i] if i < len(names) else None) for i, r in enumerate(run_ids)]
    served = serving.load_all(pairs)
    key = settings.serve_key()
    if not serving.is_loopback(args.host):
        print(f"note: listening on {args.host}: every computer that can reach this one can use the model"
              + ("" if key else "; set TL_SERVE_KEY to require a key") + ".", file=sys.stderr)

    def ready(url: str) -> None:
        rows = [{"name": m.name, "run": m.run_dir.name, "labels": m.classes, "status": f"{url}/v1/models/{m.name}",
                 "predict": f"{url}/v1/models/{m.name}:predict", "classify": f"{url}/v1/models/{m.name}:classify"}
                for m in served]
        text = "\n".join(f"serving {r['name']} (run {r['run']}) at {r['status']}  (POST :predict, :classify)" for r in rows)
        _out(args, {"url": url, "api_key": key is not None, "models": rows}, text + "\nstop with Ctrl-C")
        sys.stdout.flush()

    serving.run_server(served, args.host, args.port, key=key, ready=ready)
    return 0


def _prune_text(r: dict[str, Any]) -> str:
    lines = [f"run {r['run']}: pruned from {r['parent']} to {r['sparsity_reached']:.1%} sparsity of its prunable weights "
             f"(asked {r['sparsity']:.0%}, {r['epochs']} epochs)",
             f"  test accuracy {r['test_accuracy']:.3f} ({r['change_points']:+.1f} points against {r['parent_test_accuracy']:.3f})"
             + (f", {r['ms_per_image']:.2f} ms per image" if r.get("ms_per_image") is not None else ""),
             f"  parameters {r['parameters']:,}, of which non-zero {r['nonzero_parameters']:,} "
             f"(parent {r['parent_nonzero_parameters']:,})"]
    for kind, k in r["kinds"].items():
        lines.append(f"  {kind:<16} {k['layers']:>3} layers {k['weights']:>10,} weights  {k['sparsity']:6.1%} zero"
                     + ("" if k["prunable"] else "  (not prunable)"))
    lines.append(f"  {'file':<16}{'MB':>8}{'gzip MB':>9}{'gzip of parent':>16}")
    for name, f in r["files"].items():
        lines.append(f"  {name:<16}{f['bytes'] / 2**20:>8.2f}{f['gzip_bytes'] / 2**20:>9.2f}{f.get('gzip_vs_parent', 0):>16.0%}")
    lines.append(f"  {r['not_prunable']}")
    return "\n".join(lines)


def cmd_prune(args: argparse.Namespace) -> int:
    parent = runs.run_path(args.run_id, workspace(args.workspace))
    child, result = pruning.prune_run(parent, args.sparsity, args.epochs, listener=_progress_listener(args.quiet))
    print(f"run {child.name}", file=sys.stderr)
    if result["state"] != "done":
        _out(args, {"id": child.name, **result}, child.name)
        return 1
    if not args.quiet:
        print("converting to TensorFlow Lite and measuring every variant on the test split...", file=sys.stderr)
    report = pruning.measure(child, args.tflite or ())
    _out(args, {"id": child.name, **report}, _prune_text(report))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    result = bench.run(args.name, keras_cache=args.keras_cache)
    _out(args, result, bench.describe(result))
    return 0


def cmd_transfer_map(args: argparse.Namespace) -> int:
    report = transfer.transfer_map(args.source, args.target, workspace(args.workspace), args.image_size)
    rows = [f"  shared      {r['name']:<40} {r['params']:>12,}" for r in report["shared"]]
    rows += [f"  difference  {r['name']:<40} {r['params']:>12,}" for r in report["difference"]]
    text = "\n".join([report["sentence"], f"{report['shared_params']:,} of {report['total_params']:,} parameters "
                      f"({report['share']:.1%}) transfer.", *rows])
    _out(args, report, text)
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser (kept separate so tests and docs can read it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", help="workspace folder (default: $TL_WORKSPACE or ./workspace)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = _Parser(prog="python -m core", description="TransferLab: transfer learning for images from the command line.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ds = sub.add_parser("dataset", help="import or create datasets")
    ds_sub = ds.add_subparsers(dest="dataset_cmd", required=True, parser_class=_Parser)
    imp = ds_sub.add_parser("import", parents=[common], help="import a folder of class folders or a .zip of one")
    imp.add_argument("src", help="a folder of class folders, or a .zip / .tar.gz of one (train/ val/ test/ tops keep their split)")
    imp.add_argument("--name")
    imp.add_argument("--unlabeled", help="a folder or archive of unlabeled images of the same kind, kept with the dataset")
    imp.add_argument("--target", action="store_true",
                     help="import every image, in any folders, without labels: images from where the model will be "
                          "used, the target of a domain-adaptation run (at least 20)")
    imp.add_argument("--max-members", type=int, help="most entries an archive or folder may hold")
    imp.add_argument("--max-file-mb", type=float, help="largest single file, in MB")
    imp.add_argument("--max-total-mb", type=float, help="most bytes an import may unpack, in MB")
    imp.add_argument("--max-ratio", type=float, help="largest expansion ratio of an archive entry")
    imp.add_argument("--max-pixels", type=int, help="largest image, in pixels (decompression-bomb guard)")
    smp = ds_sub.add_parser("sample", parents=[common], help="create a built-in sample dataset")
    smp.add_argument("name", choices=samples.SAMPLES)
    ds_sub.add_parser("list", parents=[common], help="list datasets")
    shw = ds_sub.add_parser("show", parents=[common], help="a dataset's health report")
    shw.add_argument("dataset_id")
    dl = ds_sub.add_parser("delete", parents=[common], help="delete a dataset (with --yes)")
    dl.add_argument("dataset_id")
    dl.add_argument("--yes", action="store_true", help="confirm the deletion")
    ds.set_defaults(func=cmd_dataset)

    bb = sub.add_parser("backbones", parents=[common], help="list backbones (Keras applications, TF Hub, earlier runs)")
    bb.add_argument("--tier", default="all", choices=("all", *backbones.TIERS),
                    help="only small-and-fast, balanced or most accurate backbones")
    bb.add_argument("--hub", action="store_true", help="list well-known TF Hub feature-vector models instead")
    bb.add_argument("--runs", action="store_true", help="list earlier runs whose backbone can start a new run")
    bb.set_defaults(func=cmd_backbones)
    sub.add_parser("strategies", parents=[common], help="list transfer strategies").set_defaults(func=cmd_strategies)

    wt = sub.add_parser("weights", help="get ImageNet weights ready before going offline (a demo on a school network)")
    wt_sub = wt.add_subparsers(dest="weights_cmd", required=True, parser_class=_Parser)
    for name, words in (("download", "download weights into Keras's cache now, with progress"),
                        ("list", "which backbones' weights are on this computer")):
        w = wt_sub.add_parser(name, parents=[common], help=words)
        w.add_argument("backbones", nargs="*", metavar="BACKBONE",
                       help="backbone ids (default: those the presets and the recommender use)")
        w.add_argument("--size", type=int, help="image size the weights are for (default: each backbone's usual size)")
    wt.set_defaults(func=cmd_weights)

    cfg = sub.add_parser("config", parents=[common], help="print a valid run config as JSON")
    cfg.add_argument("--dataset", required=True)
    cfg.add_argument("--preset", default="quick", choices=tuple(config_mod.PRESETS))
    cfg.add_argument("--backbone", help="a backbone id from 'python -m core backbones'")
    cfg.add_argument("--hub", help="a TF Hub feature-vector handle: a URL or a SavedModel folder (instead of --backbone)")
    cfg.add_argument("--strategy", help="a strategy id from 'python -m core strategies'")
    cfg.add_argument("--source-run", help="the earlier run domain_weights and weight_init start from")
    cfg.add_argument("--weights")
    cfg.add_argument("--epochs", type=int, help="epochs of the first phase")
    cfg.add_argument("--learning-rate", type=float, help="learning rate of the first phase")
    cfg.add_argument("--fine-tune-epochs", type=int, help="epochs of the fine-tuning phase, or of each unfreezing step")
    cfg.add_argument("--fine-tune-lr", type=float, help="learning rate of the later phases")
    cfg.add_argument("--fine-tune-layers", type=int, help="how many top layers (or groups) fine-tuning opens")
    cfg.add_argument("--fine-tune-unit", choices=config_mod.CHOICES["fine_tune_unit"])
    cfg.add_argument("--image-size", type=int)
    cfg.add_argument("--batch-size", type=int)
    cfg.add_argument("--optimizer", choices=config_mod.CHOICES["optimizer"])
    cfg.add_argument("--schedule", choices=config_mod.CHOICES["schedule"])
    cfg.add_argument("--label-smoothing", type=float)
    cfg.add_argument("--class-weights", choices=config_mod.CHOICES["class_weights"])
    cfg.add_argument("--patience", type=int)
    cfg.add_argument("--seed", type=int)
    cfg.add_argument("--mixed-precision", action="store_true", help="float16 compute (GPU only)")
    cfg.add_argument("--pooling", choices=config_mod.CHOICES["head.pooling"])
    cfg.add_argument("--dropout", type=float)
    cfg.add_argument("--hidden-units", type=int)
    cfg.add_argument("--l2", type=float)
    cfg.add_argument("--no-augment", action="store_true")
    cfg.add_argument("--source-backbone", help="layer_transfer: copy shared layers from this backbone instead of a run")
    cfg.add_argument("--temperature", type=float, help="distill: how much the teacher's answers are softened (default 4)")
    cfg.add_argument("--distill-weight", type=float, help="distill: the teacher's share of the loss, 0-1 (default 0.7)")
    cfg.add_argument("--compare-student-alone", action="store_true",
                     help="distill: also train the same student without the teacher, same budget")
    cfg.add_argument("--augment-views", type=int, help="with a frozen backbone: augmented views per image to cache")
    cfg.add_argument("--compare-scratch", action="store_true",
                     help="also train the same network from scratch, to show whether transfer helped")
    cfg.add_argument("--target-dataset", help="domain adaptation: a dataset of images from where the model will be "
                                              "used (its labels only measure accuracy there)")
    cfg.add_argument("--adapt-weight", type=float, help="how much lining up the two domains counts (default 1)")
    cfg.add_argument("--adapt-loss", choices=config_mod.CHOICES["adapt_loss"], help="adaptive_layers: mmd or coral")
    cfg.add_argument("--target-labeled-per-class", type=int,
                     help="also train on this many labelled target images per class (default 0)")
    cfg.add_argument("--compare-source-only", action="store_true",
                     help="also train the source-only baseline, to show whether adaptation helped on the target")
    cfg.set_defaults(func=cmd_config)

    rc = sub.add_parser("recommend", parents=[common], help="propose a strategy, backbone and epochs for a dataset")
    rc.add_argument("--dataset", required=True)
    rc.add_argument("--everyday", choices=("yes", "no", "unsure"), default="unsure",
                    help="are the images everyday photos (like ImageNet's)?")
    rc.set_defaults(func=cmd_recommend)

    cd = sub.add_parser("code", parents=[common], help="print a standalone tf_keras training script for a config")
    cd.add_argument("config", help="a config JSON file from 'python -m core config'")
    cd.add_argument("--out", help="write the script to this file instead")
    cd.set_defaults(func=cmd_code)

    se = sub.add_parser("sees", parents=[common], help="what a backbone's ImageNet classifier sees in images (top 3)")
    se.add_argument("backbone")
    se.add_argument("images", nargs="+")
    se.set_defaults(func=cmd_sees)

    tr = sub.add_parser("train", parents=[common], help="train in the foreground (progress on stderr)")
    tr.add_argument("config", help="a config JSON file from 'python -m core config'")
    tr.add_argument("--quiet", action="store_true", help="no progress on stderr")
    tr.add_argument("--distribute", choices=("mirrored", "multiworker"),
                    help="mirrored: all local GPUs (tf.distribute.MirroredStrategy); "
                         "multiworker: several machines described by TF_CONFIG")
    tr.set_defaults(func=cmd_train)

    lf = sub.add_parser("lr-find", parents=[common], help="find a good learning rate: ~100 batches with the rate "
                                                          "growing from 1e-7 to 1, fastai's valley suggestion")
    lf.add_argument("config", help="a config JSON file from 'python -m core config'")
    lf.add_argument("--batches", type=int, default=lrfind.NUM_ITER, help="how many batches (default 100)")
    lf.set_defaults(func=cmd_lr_find)

    tn = sub.add_parser("tune", parents=[common], help="search for good settings: an Optuna study whose every trial is "
                                                       "a run (prints the study id, then the best trial)")
    tn.add_argument("config", nargs="?", help="a config JSON file: the settings not searched come from it")
    tn.add_argument("--trials", type=int, help=f"how many trials in all (default {studies.DEFAULT_TRIALS})")
    tn.add_argument("--minutes", type=float, help="stop starting trials after this many minutes")
    tn.add_argument("--search", help=f"settings to search, comma-separated (default {','.join(studies.HEAD_SEARCH)}; "
                                     f"also: {','.join(n for n in studies.CATALOGUE if n not in studies.HEAD_SEARCH)},backbone)")
    tn.add_argument("--backbones", help="backbones to choose among, comma-separated (with --search backbone, default: "
                                        "those whose weights are on this computer)")
    tn.add_argument("--storage", help="an Optuna storage URL shared by workers on several machines (postgresql://, "
                                      "mysql://, sqlite:///, journal:///PATH); default: a SQLite file in the study folder")
    tn.add_argument("--study", help="with --join: the study to work on")
    tn.add_argument("--join", action="store_true", help="work on an existing study (another worker, or a resume)")
    tn.add_argument("--quiet", action="store_true", help="no progress on stderr")
    tn.set_defaults(func=cmd_tune)

    sd = sub.add_parser("study", help="look at hyperparameter searches")
    sd_sub = sd.add_subparsers(dest="study_cmd", required=True, parser_class=_Parser)
    sd_sub.add_parser("list", parents=[common], help="list studies")
    sds = sd_sub.add_parser("show", parents=[common], help="every trial: number, run id, params, value, state, seconds")
    sds.add_argument("study_id")
    sdc = sd_sub.add_parser("cancel", parents=[common], help="ask a study's background job to stop")
    sdc.add_argument("study_id")
    sd.set_defaults(func=cmd_study)

    rs = sub.add_parser("resume", parents=[common], help="continue an interrupted or cancelled run from its last checkpoint")
    rs.add_argument("run_id")
    rs.add_argument("--quiet", action="store_true", help="no progress on stderr")
    rs.set_defaults(func=cmd_resume)

    ev = sub.add_parser("evaluate", parents=[common], help="evaluate a run on its test split")
    ev.add_argument("run_id")
    ev.add_argument("--domain-map", action="store_true",
                    help="for a run with a target dataset: how much source and target images overlap in the model's "
                         "features, after adaptation and before (its source-only baseline), in a sentence")
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", parents=[common], help="classify images with a trained run")
    pr.add_argument("run_id")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top-k", type=int, default=3)
    pr.set_defaults(func=cmd_predict)

    sub.add_parser("runs", parents=[common], help="list runs").set_defaults(func=cmd_runs)

    sw = sub.add_parser("sweep", parents=[common], help="hosted mode: remove the anonymous session workspaces unused "
                                                         "for longer than their time to live (for a cron job)")
    sw.add_argument("--ttl-hours", type=float, help="default: TL_SESSION_TTL_HOURS, else 12")
    sw.set_defaults(func=cmd_sweep)

    ex = sub.add_parser("export", parents=[common], help="export a trained run (TFLite formats are checked on its test split)")
    ex.add_argument("run_id")
    ex.add_argument("--format", required=True, choices=tuple(export.FORMATS), help="what to export")
    ex.add_argument("--out", help="also copy the file into this folder (it is kept in the run's exports/ folder)")
    ex.set_defaults(func=cmd_export)

    sv = sub.add_parser("serve", parents=[common], help="answer other programs over HTTP (TensorFlow Serving's REST API)",
                        description="Serve trained runs over HTTP: GET /v1/models/NAME (status), /v1/models/NAME/metadata, "
                                    "POST /v1/models/NAME:predict (JSON instances) and NAME:classify (multipart image "
                                    "upload). Set TL_SERVE_KEY to require 'Authorization: Bearer KEY'.")
    sv.add_argument("run_id")
    sv.add_argument("--run", action="append", help="serve another run too (repeat for more)")
    sv.add_argument("--name", action="append",
                    help="the name in the address /v1/models/NAME, one per run in order (default: the dataset's name)")
    sv.add_argument("--host", default=serving.DEFAULT_HOST,
                    help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0: every network)")
    sv.add_argument("--port", type=int, default=serving.DEFAULT_PORT, help="port (default 8501; 0: any free one)")
    sv.set_defaults(func=cmd_serve)

    pn = sub.add_parser("prune", parents=[common], help="make a smaller model: magnitude pruning of a finished run "
                                                          "into a new run, measured with its TFLite variants")
    pn.add_argument("run_id")
    pn.add_argument("--sparsity", type=float, default=pruning.DEFAULT_SPARSITY,
                    help="share of the convolution and dense weights set to zero, 0.05-0.95 (default 0.5)")
    pn.add_argument("--epochs", type=int, default=pruning.DEFAULT_EPOCHS,
                    help=f"fine-tuning epochs while pruning (default {pruning.DEFAULT_EPOCHS})")
    pn.add_argument("--tflite", nargs="+", choices=export.TFLITE_IDS,
                    help="TFLite variants to convert and measure (default: all four; float32 always, as the baseline)")
    pn.add_argument("--quiet", action="store_true", help="no progress on stderr")
    pn.set_defaults(func=cmd_prune)

    bn = sub.add_parser("bench", parents=[common], help="run a benchmark")
    bn.add_argument("name", choices=tuple(bench.BENCHMARKS))
    bn.add_argument("--keras-cache", help="a folder of Keras weight files to seed the benchmark's empty cache with")
    bn.set_defaults(func=cmd_bench)

    tm = sub.add_parser("transfer-map", parents=[common],
                        help="which layers of a backbone a run or another backbone can give it (shared) and which train anew")
    tm.add_argument("--from", dest="source", required=True, help="a run id or a backbone id")
    tm.add_argument("--to", dest="target", required=True, help="the backbone id that receives the layers")
    tm.add_argument("--image-size", type=int, help="default: the target backbone's own size")
    tm.set_defaults(func=cmd_transfer_map)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parser().parse_args(argv)
    # stdout carries the command's own output only (one JSON document with --json): whatever a library
    # prints while the command runs (Keras's "Downloading data from ...", progress bars) goes to stderr.
    args.stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return args.func(args)
    except TransferLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if settings.debug():
            traceback.print_exc()
        else:
            print("set TL_DEBUG=1 to see the details", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
