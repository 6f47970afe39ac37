"""`backbones`, `strategies`, `weights`, `sees` and `transfer-map`: what a run can start from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.cli.common import Parser, import_progress, show_result
from core.engine import modeling, networks, transfer
from core.errors import TransferLabError
from core.spec import backbones, config as config_mod, strategies
from core.store import sources
from core.store.files import workspace


def _backbone_row(spec: backbones.BackboneSpec, ws: Path) -> dict[str, Any]:
    return {
        "id": spec.id, "label": spec.label, "family": spec.family, "params_m": spec.params_m,
        "base_params_m": spec.base_params_m, "size_mb": spec.size_mb, "imagenet_top1": spec.top1,
        "gflops": spec.gflops, "ms_per_image": spec.ms_per_image, "preprocessing": spec.preprocessing,
        "default_size": spec.default_size, "min_size": spec.min_size, "max_size": spec.max_size,
        "weight_sizes": list(spec.weight_sizes), "weights": list(spec.weights_options),
        "groups": [g["name"] for g in spec.groups],
        "tiers": [t for t in backbones.TIERS if backbones.in_tier(spec, t)],
        "imagenet_cached": backbones.cached_weights(spec, spec.default_size, ws) is not None,
    }


def cmd_backbones(args: argparse.Namespace) -> int:
    if args.hub:
        rows = [{"id": backbones.hub_id(m.handle), "label": m.label, "size": m.size, "note": m.note}
                for m in backbones.HUB_MODELS]
        show_result(args, rows, "\n".join(f"{r['label']:<44} {r['id']}\n{'':<44} {r['note']}" for r in rows))
        return 0
    if args.runs:
        found = sources.run_sources(workspace(args.workspace))
        rows = [{"run_id": s.run_id, "backbone": s.backbone, "dataset_id": s.dataset_id, "classes": s.classes,
                 "test_accuracy": s.test_accuracy, "early_checkpoint": s.has_early_checkpoint} for s in found]
        show_result(args, rows, "\n".join(s.label for s in found) or "No finished runs in this workspace yet.")
        return 0
    rows = [_backbone_row(s, workspace(args.workspace)) for s in backbones.BACKBONES.values() if backbones.in_tier(s, args.tier)]
    text = "\n".join(
        f"{r['id']:<22} {r['params_m']:>7.2f}M params  top-1 {r['imagenet_top1'] or '-':>5}  "
        f"{r['gflops']:>6.2f} GFLOPs ~{r['ms_per_image']:>6.0f} ms/image  {len(r['groups'])} groups  "
        f"{'cached' if r['imagenet_cached'] else ('no pretraining' if r['weights'] == ['none'] else 'download')}"
        for r in rows
    )
    show_result(args, rows, text)
    return 0


def _kit(args: argparse.Namespace) -> list[tuple[Any, int]]:
    """The backbones a weights command is about: those named (at --size or their default), else the offline kit."""
    if args.backbones:
        return [(backbones.get(b), args.size or backbones.get(b).default_size) for b in args.backbones]
    return [(backbones.get(b), args.size or size) for b, size in config_mod.offline_kit()]


def cmd_weights(args: argparse.Namespace) -> int:
    kit = _kit(args)
    ws = workspace(args.workspace)  # a TF Hub model (YAMNet) is kept in the workspace's hub cache
    if args.weights_cmd == "list":
        rows = [{"backbone": spec.id, "label": spec.label, "image_size": size,
                 "ready": backbones.cached_weights(spec, size, ws) is not None} for spec, size in kit]
        show_result(args, rows, "\n".join(f"{r['backbone']:<22} {r['image_size']:>4} px  "
                                   f"{'ready' if r['ready'] else 'not on this computer'}" for r in rows))
        return 0
    rows, failed = [], []
    for spec, size in kit:
        try:
            path, fetched = networks.download_weights(spec, size, progress=None if args.json else import_progress(),
                                                      ws=ws)
        except TransferLabError as exc:  # one backbone that cannot be had does not stop the others
            failed.append(exc)
            rows.append({"backbone": spec.id, "image_size": size, "error": str(exc)})
            continue
        rows.append({"backbone": spec.id, "image_size": size, "file": str(path), "downloaded": fetched})
    if len(failed) == len(rows):
        raise failed[0]
    show_result(args, rows, "\n".join(
        f"{r['backbone']:<22} " + (f"not downloaded: {r['error']}" if "error" in r else
                                   f"{'downloaded' if r['downloaded'] else 'already here'}: {r['file']}")
        for r in rows))
    for exc in failed:
        print(f"error: {exc}", file=sys.stderr)
    return 2 if failed else 0


def cmd_strategies(args: argparse.Namespace) -> int:
    rows = [{"id": s.id, "label": s.label, "sentence": s.sentence, "use_when": s.use_when,
             "starts_from": s.forced_weights or "your choice", "settings": list(s.settings)}
            for s in strategies.STRATEGIES.values()]
    show_result(args, rows, "\n".join(f"{r['id']:<20} {r['sentence']}\n{'':<20} Use it when: {r['use_when']}" for r in rows))
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
    show_result(args, rows, "\n".join(f"{r['file']}: " + ", ".join(f"{t['label']} {t['probability']:.0%}" for t in r["top"])
                               for r in rows))
    return 0


def cmd_transfer_map(args: argparse.Namespace) -> int:
    report = transfer.transfer_map(args.source, args.target, workspace(args.workspace), args.image_size)
    rows = [f"  shared      {r['name']:<40} {r['params']:>12,}" for r in report["shared"]]
    rows += [f"  difference  {r['name']:<40} {r['params']:>12,}" for r in report["difference"]]
    text = "\n".join([report["sentence"], f"{report['shared_params']:,} of {report['total_params']:,} parameters "
                      f"({report['share']:.1%}) transfer.", *rows])
    show_result(args, report, text)
    return 0


def add_backbones(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `backbones` command."""
    bb = sub.add_parser("backbones", parents=[common], help="list backbones (Keras applications, TF Hub, earlier runs)")
    bb.add_argument("--tier", default="all", choices=("all", *backbones.TIERS),
                    help="only small-and-fast, balanced or most accurate backbones")
    bb.add_argument("--hub", action="store_true", help="list well-known TF Hub feature-vector models instead")
    bb.add_argument("--runs", action="store_true", help="list earlier runs whose backbone can start a new run")
    bb.set_defaults(func=cmd_backbones)


def add_strategies(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `strategies` command."""
    sub.add_parser("strategies", parents=[common], help="list transfer strategies").set_defaults(func=cmd_strategies)


def add_weights(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `weights` command and its sub-commands."""
    wt = sub.add_parser("weights", help="get ImageNet weights ready before going offline (a demo on a school network)")
    wt_sub = wt.add_subparsers(dest="weights_cmd", required=True, parser_class=Parser)
    for name, words in (("download", "download weights now (ImageNet files into Keras's cache, TF Hub models into the workspace), with progress"),
                        ("list", "which backbones' weights are on this computer")):
        w = wt_sub.add_parser(name, parents=[common], help=words)
        w.add_argument("backbones", nargs="*", metavar="BACKBONE",
                       help="backbone ids (default: those the presets and the recommender use)")
        w.add_argument("--size", type=int, help="image size the weights are for (default: each backbone's usual size)")
    wt.set_defaults(func=cmd_weights)


def add_sees(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `sees` command."""
    se = sub.add_parser("sees", parents=[common], help="what a backbone's ImageNet classifier sees in images (top 3)")
    se.add_argument("backbone")
    se.add_argument("images", nargs="+")
    se.set_defaults(func=cmd_sees)


def add_transfer_map(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `transfer-map` command."""
    tm = sub.add_parser("transfer-map", parents=[common],
                        help="which layers of a backbone a run or another backbone can give it (shared) and which train anew")
    tm.add_argument("--from", dest="source", required=True, help="a run id or a backbone id")
    tm.add_argument("--to", dest="target", required=True, help="the backbone id that receives the layers")
    tm.add_argument("--image-size", type=int, help="default: the target backbone's own size")
    tm.set_defaults(func=cmd_transfer_map)
