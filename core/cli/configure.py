"""`config`, `recommend` and `code`: a run's settings, proposed, written and shown as a script."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.cli.common import read_config, show_result, write_stdout
from core.data import domains, splits
from core.ship import codegen
from core.spec import backbones, config as config_mod, fields, strategies
from core.spec import kinds as spec_kinds
from core.store import datasets, runs
from core.store.files import workspace


def cmd_config(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    info = datasets.load_dataset(args.dataset, ws)
    kind = spec_kinds.of(info).id
    given = fields.given(vars(args))
    if args.hub:  # the handle names a model of the dataset's kind (a sound model takes a waveform)
        given["backbone"] = backbones.hub_id(args.hub, kind)
    strategy = strategies.STRATEGIES.get(given.get("strategy") or "")
    if strategy and strategy.source and given.get("source_run") and "backbone" not in given:
        # Weights from an earlier run fit only that run's backbone.
        given["backbone"] = runs.load_config(runs.run_path(given["source_run"], ws)).backbone
    proposal = _recommendation(info, ws).overrides() if args.preset == config_mod.RECOMMENDED else None
    cfg = config_mod.settle(args.preset, args.dataset, given, proposal, kind)
    if cfg.target_dataset_id:  # refused or explained before anything trains
        for message in domains.check_target(info, datasets.load_dataset(cfg.target_dataset_id, ws)):
            print(f"note: {message}", file=sys.stderr)
    write_stdout(args, cfg.to_json())
    return 0


def _recommendation(info: dict[str, Any], ws: Path, everyday: bool | None = None) -> strategies.Recommendation:
    """The recommender's proposal for a dataset of any kind, preferring backbones whose weights are on this computer."""
    backbones.use_hub_cache(ws)  # a TF Hub model downloaded earlier (YAMNet) counts as here
    kind = spec_kinds.of(info).id
    return strategies.recommend_for(kind, splits.train_counts(info), everyday, backbones.cached_ids(kind))


def cmd_recommend(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    info = datasets.load_dataset(args.dataset, ws)
    rec = _recommendation(info, ws, {"yes": True, "no": False, "unsure": None}[args.everyday])
    show_result(args, {**asdict(rec), "overrides": rec.overrides()}, rec.reason)
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    cfg = read_config(args.config)
    ws = workspace(args.workspace)
    script = codegen.training_script(cfg, str(datasets.dataset_path(cfg.dataset_id, ws)), ws=ws)
    if args.out:
        Path(args.out).write_text(script, encoding="utf-8")
        write_stdout(args, args.out)
    else:
        write_stdout(args, script, end="")
    return 0


def add_config(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `config` command: one flag per setting, made from the settings table (core/spec/fields.py)."""
    cfg = sub.add_parser("config", parents=[common], help="print a valid run config as JSON")
    cfg.add_argument("--dataset", required=True)
    cfg.add_argument("--preset", default="quick", choices=config_mod.PRESET_CHOICES)
    for setting in fields.SETTINGS.values():
        for flag in setting.flags:
            if flag.switch:
                cfg.add_argument(f"--{flag.name}", action="store_true", help=flag.help)
            else:
                kind = setting.type if setting.type in (int, float) and flag.convert is None else None
                cfg.add_argument(f"--{flag.name}", type=kind, choices=setting.choices, help=flag.help)
    cfg.set_defaults(func=cmd_config)


def add_recommend(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `recommend` command."""
    rc = sub.add_parser("recommend", parents=[common], help="propose a strategy, backbone and epochs for a dataset")
    rc.add_argument("--dataset", required=True)
    rc.add_argument("--everyday", choices=("yes", "no", "unsure"), default="unsure",
                    help="are the images everyday photos (like ImageNet's)?")
    rc.set_defaults(func=cmd_recommend)


def add_code(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `code` command."""
    cd = sub.add_parser("code", parents=[common], help="print a standalone tf_keras training script for a config")
    cd.add_argument("config", help="a config JSON file from 'python -m core config'")
    cd.add_argument("--out", help="write the script to this file instead")
    cd.set_defaults(func=cmd_code)
