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
from core.spec import backbones, config as config_mod, strategies
from core.spec import kinds as spec_kinds
from core.store import datasets, runs
from core.store.files import workspace


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


def _recommendation(info: dict, ws: Path, everyday: bool | None = None) -> strategies.Recommendation:
    """The recommender's proposal for a dataset of any kind, preferring backbones whose weights are here."""
    backbones.use_hub_cache(ws)  # a TF Hub model downloaded earlier (YAMNet) counts as here
    cached = [s.id for s in backbones.BACKBONES.values() if backbones.cached_weights(s, s.default_size)]
    if spec_kinds.of(info).id == "audio":
        return strategies.recommend_sound(splits.train_counts(info), cached)
    return strategies.recommend(splits.train_counts(info), everyday, cached)


def cmd_config(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    info = datasets.load_dataset(args.dataset, ws)
    kind = spec_kinds.of(info).id
    overrides: dict[str, Any] = {k: getattr(args, f) for f, k in _CONFIG_FLAGS.items() if getattr(args, f) is not None}
    name = args.preset
    if name == config_mod.RECOMMENDED:  # the recommender's choice on top of the kind's balanced preset
        overrides = {**_recommendation(info, ws).overrides(), "preset": name, **overrides}
        name = "balanced"
    table = config_mod.presets(kind)
    if args.hub:
        overrides["backbone"] = backbones.hub_id(args.hub, kind)
    strategy = strategies.STRATEGIES.get(args.strategy or "")
    if strategy and strategy.source and args.source_run and "backbone" not in overrides:
        # Weights from an earlier run fit only that run's backbone.
        overrides["backbone"] = runs.load_config(runs.run_path(args.source_run, ws)).backbone
    chosen = overrides.get("backbone")
    if chosen is not None and (chosen in backbones.BACKBONES or backbones.is_hub(chosen)) and "image_size" not in overrides:
        # Keep the preset's image size where the backbone allows it.
        spec = backbones.get(chosen)
        size = table[name]["image_size"]
        overrides["image_size"] = min(max(size, spec.min_size), spec.max_size)
    if strategy and strategy.forced_weights and args.weights is None:
        overrides["weights"] = strategy.forced_weights
    if chosen is not None and (chosen in backbones.BACKBONES or backbones.is_hub(chosen)) and args.weights is None:
        options = backbones.get(chosen).weights_options
        if "weights" not in overrides and len(options) == 1:
            overrides["weights"] = options[0]
        elif "weights" not in overrides and table[name].get("weights", "imagenet") not in options + ("run",):
            # Another backbone than the preset's (sounds' quick preset trains one from scratch): pretrained weights.
            overrides["weights"] = "imagenet" if "imagenet" in options else options[0]
        elif "weights" not in overrides and chosen != table[name]["backbone"] and "imagenet" in options:
            overrides["weights"] = "imagenet"
    if strategy and strategy.min_fine_tune_epochs and args.fine_tune_epochs is None:
        overrides.setdefault("fine_tune_epochs", max(strategy.min_fine_tune_epochs,
                                                     table[name].get("fine_tune_epochs", 3)))
    head = {f: getattr(args, f) for f in _HEAD_FLAGS if getattr(args, f) is not None}
    if head:
        overrides["head"] = {**table[name].get("head", {}), **head}
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
    cfg = config_mod.preset(name, args.dataset, kind, **overrides)
    if cfg.target_dataset_id:  # refused or explained before anything trains
        for message in domains.check_target(datasets.load_dataset(cfg.dataset_id, ws),
                                            datasets.load_dataset(cfg.target_dataset_id, ws)):
            print(f"note: {message}", file=sys.stderr)
    write_stdout(args, cfg.to_json())
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    info = datasets.load_dataset(args.dataset, ws)
    everyday = {"yes": True, "no": False, "unsure": None}[args.everyday]
    rec = _recommendation(info, ws, everyday)
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
    """The `config` command: one flag per setting."""
    cfg = sub.add_parser("config", parents=[common], help="print a valid run config as JSON")
    cfg.add_argument("--dataset", required=True)
    cfg.add_argument("--preset", default="quick", choices=(*config_mod.PRESETS, config_mod.RECOMMENDED))
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
