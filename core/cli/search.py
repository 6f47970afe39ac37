"""`tune` and `study`: hyperparameter searches whose every trial is a run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli.common import Parser, progress_listener, read_config, show_result
from core.errors import ConfigError
from core.service import studies, tuner
from core.store.files import workspace


def _trial_line(r: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
    value = "" if r["value"] is None else f"val_loss {r['value']:.4f}"
    acc = "" if r["val_accuracy"] is None else f" val_acc {r['val_accuracy']:.3f}"
    pruned = f" (after epoch {r['pruned_epoch']})" if r["pruned_epoch"] else ""
    secs = "" if r["seconds"] is None else f" {r['seconds']:.0f}s"
    where = f" on {r['worker']}" if r.get("worker") else ""
    return f"  #{r['number']:<3} {r['state']:<8}{pruned} {value}{acc}{secs}  {r['run_id'] or ''}{where}  {params}"


def cmd_tune(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    split = lambda text: [t.strip() for t in text.split(",") if t.strip()] if text else None  # noqa: E731
    cfg = read_config(args.config) if args.config else None
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
    listener = progress_listener(True)
    show = (lambda row: print(_trial_line(row), file=sys.stderr)) if not args.quiet else None
    result = tuner.work(study_id, ws, listener=listener, trials=args.trials if args.join else None,
                        minutes=args.minutes if args.join else None, on_trial=show)
    best = result["best"]
    text = f"study {study_id}: " + (f"best trial #{best['number']} (run {best['run_id']}), validation loss "
                                     f"{best['value']:.4f}, {best['params']}" if best else "no trial finished")
    show_result(args, result, text)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    if args.study_cmd == "list":
        rows = studies.list_studies(ws)
        show_result(args, rows, "\n".join(f"{r['id']}  {r['dataset_id']}  {','.join(r['space'])}  job: {r['job']}" for r in rows)
             or "No studies yet.")
        return 0
    if args.study_cmd == "cancel":
        studies.cancel(args.study_id, ws)
        show_result(args, {"id": args.study_id, "cancel_requested": True}, f"asked study {args.study_id} to stop")
        return 0
    info = studies.show(args.study_id, ws, storage=args.storage)
    counts = ", ".join(f"{n} {k}" for k, n in info["counts"].items() if n)
    workers = f"; workers: {', '.join(info['workers'])}" if len(info["workers"]) > 1 else ""
    head = f"{info['id']} on {info['dataset_id']}: searches {', '.join(info['space'])}; {counts or 'no trials yet'}{workers}"
    show_result(args, info, "\n".join([head, *(_trial_line(r) for r in info["trials"])]))
    return 0


def add_tune(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `tune` command."""
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


def add_study(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `study` command and its sub-commands."""
    sd = sub.add_parser("study", help="look at hyperparameter searches")
    sd_sub = sd.add_subparsers(dest="study_cmd", required=True, parser_class=Parser)
    sd_sub.add_parser("list", parents=[common], help="list studies")
    sds = sd_sub.add_parser("show", parents=[common], help="every trial: number, run id, params, value, state, "
                                                          "seconds, the worker that ran it")
    sds.add_argument("study_id")
    sds.add_argument("--storage", help="read a study this workspace has not joined from its storage URL (the same "
                                       "URL the workers use); each trial says which worker (computer:process) ran it")
    sdc = sd_sub.add_parser("cancel", parents=[common], help="ask a study's background job to stop")
    sdc.add_argument("study_id")
    sd.set_defaults(func=cmd_study)
