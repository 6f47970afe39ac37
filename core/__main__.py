"""Command line: python -m core ... (the same functions the pages call).

Exit 0 on success; 2 on bad input with one plain sentence on stderr; 1 on an internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from core import backbones, config as config_mod, datasets, runs, strategies
from core.errors import ConfigError, TransferLabError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one sentence, exit 2, like every bad input
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _dataset_summary(info: dict) -> str:
    counts = ", ".join(f"{c}: {n}" for c, n in info["counts"].items())
    lines = [info["id"], f"  {sum(info['counts'].values())} images in {len(info['classes'])} classes ({counts})"]
    if info["skipped"]:
        lines.append(f"  {len(info['skipped'])} file(s) skipped:")
        lines += [f"    {s['file']}: {s['reason']}" for s in info["skipped"][:20]]
    lines += [f"  warning: {w}" for w in info["warnings"]]
    return "\n".join(lines)


def cmd_dataset(args: argparse.Namespace) -> int:
    ws = runs.workspace(args.workspace)
    if args.dataset_cmd == "import":
        info = datasets.import_path(args.src, ws, name=args.name)
    elif args.dataset_cmd == "sample":
        info = datasets.import_sample(args.name, ws)
    else:
        found = datasets.list_datasets(ws)
        _out(args, [{"id": d["id"], "name": d["name"], "counts": d["counts"]} for d in found],
             "\n".join(f"{d['id']}  {sum(d['counts'].values())} images, {len(d['classes'])} classes" for d in found)
             or "No datasets yet.")
        return 0
    brief = {k: info[k] for k in ("id", "name", "classes", "counts", "skipped", "warnings")}
    _out(args, brief, _dataset_summary(info))
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    rows = []
    for spec in backbones.BACKBONES.values():
        rows.append({
            "id": spec.id, "label": spec.label, "params_m": spec.params_m, "size_mb": spec.size_mb,
            "imagenet_top1": spec.top1, "default_size": spec.default_size, "min_size": spec.min_size,
            "max_size": spec.max_size, "weights": list(spec.weights_options),
            "imagenet_cached": backbones.cached_weights(spec, spec.default_size) is not None,
        })
    text = "\n".join(
        f"{r['id']:<20} {r['params_m']:>6.2f}M params  top-1 {r['imagenet_top1'] or '-':>5}  "
        f"{'cached' if r['imagenet_cached'] else ('no pretraining' if r['weights'] == ['none'] else 'download')}"
        for r in rows
    )
    _out(args, rows, text)
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    rows = [{"id": s.id, "label": s.label, "sentence": s.sentence, "use_when": s.use_when} for s in strategies.STRATEGIES.values()]
    _out(args, rows, "\n".join(f"{r['id']:<20} {r['sentence']}\n{'':<20} Use it when: {r['use_when']}" for r in rows))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    datasets.dataset_path(args.dataset, runs.workspace(args.workspace))
    overrides: dict[str, Any] = {}
    for flag, key in (("backbone", "backbone"), ("strategy", "strategy"), ("weights", "weights"),
                      ("epochs", "epochs"), ("image_size", "image_size"), ("batch_size", "batch_size")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.backbone in backbones.BACKBONES and args.image_size is None:
        # Keep the preset's image size where the backbone allows it.
        spec = backbones.get(args.backbone)
        size = config_mod.PRESETS[args.preset]["image_size"]
        overrides["image_size"] = min(max(size, spec.min_size), spec.max_size)
    forced = strategies.STRATEGIES.get(args.strategy or "")
    if forced and forced.forced_weights and args.weights is None:
        overrides["weights"] = forced.forced_weights
    if args.backbone in backbones.BACKBONES and args.weights is None:
        options = backbones.get(args.backbone).weights_options
        if "weights" not in overrides and len(options) == 1:
            overrides["weights"] = options[0]
    if args.no_augment:
        overrides["augment"] = {k: False for k in asdict(config_mod.AugmentConfig())}
    cfg = config_mod.preset(args.preset, args.dataset, **overrides)
    print(cfg.to_json())
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
    from core import training

    path = Path(args.config)
    if not path.is_file():
        raise ConfigError(f"The config file '{path}' does not exist; create one with 'python -m core config'.")
    cfg = config_mod.RunConfig.from_json(path.read_text(encoding="utf-8"))
    ws = runs.workspace(args.workspace)
    datasets.check_trainable(datasets.load_dataset(cfg.dataset_id, ws))
    run_dir = runs.create_run(cfg, ws)
    print(f"run {run_dir.name}", file=sys.stderr)
    result = training.run(cfg, run_dir, listener=_progress_listener(args.quiet))
    _out(args, {"id": run_dir.name, **result}, run_dir.name)
    return 0 if result["state"] == "done" else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core import evaluation

    report = evaluation.evaluate(runs.run_path(args.run_id, runs.workspace(args.workspace)))
    brief = {k: v for k, v in report.items() if k != "predictions"}
    rows = "\n".join(f"  {r['class']:<16} precision {r['precision']:.3f}  recall {r['recall']:.3f}  f1 {r['f1']:.3f}  n={r['support']}"
                     for r in report["per_class"])
    _out(args, {"id": args.run_id, **brief}, f"test accuracy {report['accuracy']:.3f} on {report['n']} images\n{rows}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from core import evaluation

    run_dir = runs.run_path(args.run_id, runs.workspace(args.workspace))
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
    found = runs.list_runs(runs.workspace(args.workspace))
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


def cmd_bench(args: argparse.Namespace) -> int:
    from core import bench

    result = bench.run(args.name, keras_cache=args.keras_cache)
    _out(args, result, bench.describe(result))
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
    imp.add_argument("src")
    imp.add_argument("--name")
    smp = ds_sub.add_parser("sample", parents=[common], help="create a built-in sample dataset")
    smp.add_argument("name", choices=datasets.SAMPLES)
    ds_sub.add_parser("list", parents=[common], help="list datasets")
    ds.set_defaults(func=cmd_dataset)

    sub.add_parser("backbones", parents=[common], help="list backbones").set_defaults(func=cmd_backbones)
    sub.add_parser("strategies", parents=[common], help="list transfer strategies").set_defaults(func=cmd_strategies)

    cfg = sub.add_parser("config", parents=[common], help="print a valid run config as JSON")
    cfg.add_argument("--dataset", required=True)
    cfg.add_argument("--preset", default="quick", choices=tuple(config_mod.PRESETS))
    cfg.add_argument("--backbone")
    cfg.add_argument("--strategy")
    cfg.add_argument("--weights")
    cfg.add_argument("--epochs", type=int)
    cfg.add_argument("--image-size", type=int)
    cfg.add_argument("--batch-size", type=int)
    cfg.add_argument("--no-augment", action="store_true")
    cfg.set_defaults(func=cmd_config)

    tr = sub.add_parser("train", parents=[common], help="train in the foreground (progress on stderr)")
    tr.add_argument("config", help="a config JSON file from 'python -m core config'")
    tr.add_argument("--quiet", action="store_true", help="no progress on stderr")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", parents=[common], help="evaluate a run on its test split")
    ev.add_argument("run_id")
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", parents=[common], help="classify images with a trained run")
    pr.add_argument("run_id")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top-k", type=int, default=3)
    pr.set_defaults(func=cmd_predict)

    sub.add_parser("runs", parents=[common], help="list runs").set_defaults(func=cmd_runs)

    bn = sub.add_parser("bench", parents=[common], help="run a benchmark")
    bn.add_argument("name", choices=("quick-shapes",))
    bn.add_argument("--keras-cache", help="a folder of Keras weight files to seed the benchmark's empty cache with")
    bn.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except TransferLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("TL_DEBUG"):
            traceback.print_exc()
        else:
            print("set TL_DEBUG=1 to see the details", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
