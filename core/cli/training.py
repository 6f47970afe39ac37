"""`train`, `resume` and `lr-find`: training in the foreground."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli.common import progress_listener, read_config, show_result
from core.data import health
from core.engine import lrfind, training, transfer
from core.errors import WeightsUnavailable
from core.store import datasets, runs
from core.store.files import workspace


def cmd_train(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    ws = workspace(args.workspace)
    refusal = transfer.offline_refusal(cfg)  # the Train page's refusal, before a run folder exists
    if refusal:
        raise WeightsUnavailable(refusal)
    health.check_trainable(datasets.load_dataset(cfg.dataset_id, ws), cfg.backbone)
    run_dir = runs.create_run(cfg, ws)
    print(f"run {run_dir.name}", file=sys.stderr)
    result = training.train_and_compare(cfg, run_dir, listener=progress_listener(args.quiet), distribute=args.distribute)
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
    show_result(args, {"id": run_dir.name, **result}, run_dir.name)
    return 0 if result["state"] == "done" else 1


def cmd_resume(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    run_dir = runs.run_path(args.run_id, ws)
    runs.reconcile(ws)  # a run whose process died (killed, power cut) reads as interrupted
    runs.check_resumable(run_dir)
    runs.cancel_file(run_dir).unlink(missing_ok=True)
    result = training.run(runs.load_config(run_dir), run_dir, listener=progress_listener(args.quiet), resume=True)
    show_result(args, {"id": run_dir.name, **result}, run_dir.name)
    return 0 if result["state"] == "done" else 1


def cmd_lr_find(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    tty = sys.stderr.isatty()

    def show(i: int, n: int, lr: float, loss: float) -> None:
        if tty:
            print(f"\r  batch {i}/{n} rate {lr:.2e} smoothed loss {loss:.4f}", end="", file=sys.stderr)

    out = lrfind.find(cfg, workspace(args.workspace), num_iter=args.batches, progress=show)
    if tty:
        print(file=sys.stderr)
    show_result(args, out, f"suggested learning rate {out['suggestion']:.2e} (valley rule, {out['batches']} batches"
                    f"{', stopped when the loss passed 4x its minimum' if out['stopped_early'] else ''}"
                    f"{', on cached features' if out['on_features'] else ''})")
    return 0


def add_train(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `train` command."""
    tr = sub.add_parser("train", parents=[common], help="train in the foreground (progress on stderr)")
    tr.add_argument("config", help="a config JSON file from 'python -m core config'")
    tr.add_argument("--quiet", action="store_true", help="no progress on stderr")
    tr.add_argument("--distribute", choices=("mirrored", "multiworker"),
                    help="mirrored: all local GPUs (tf.distribute.MirroredStrategy); "
                         "multiworker: several machines described by TF_CONFIG")
    tr.set_defaults(func=cmd_train)


def add_resume(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `resume` command."""
    rs = sub.add_parser("resume", parents=[common], help="continue an interrupted or cancelled run from its last checkpoint")
    rs.add_argument("run_id")
    rs.add_argument("--quiet", action="store_true", help="no progress on stderr")
    rs.set_defaults(func=cmd_resume)


def add_lr_find(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `lr-find` command."""
    lf = sub.add_parser("lr-find", parents=[common], help="find a good learning rate: ~100 batches with the rate "
                                                          "growing from 1e-7 to 1, fastai's valley suggestion")
    lf.add_argument("config", help="a config JSON file from 'python -m core config'")
    lf.add_argument("--batches", type=int, default=lrfind.NUM_ITER, help="how many batches (default 100)")
    lf.set_defaults(func=cmd_lr_find)
