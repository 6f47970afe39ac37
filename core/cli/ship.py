"""`export`, `serve` and `prune`: a trained model leaves the workspace."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from core import settings
from core.cli.common import progress_listener, show_result
from core.errors import TransferLabError
from core.ship import export, pruning, serving
from core.store import runs
from core.store.files import workspace


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
    show_result(args, result, text)
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
        show_result(args, {"url": url, "api_key": key is not None, "models": rows}, text + "\nstop with Ctrl-C")
        sys.stdout.flush()

    serving.run_server(served, args.host, args.port, key=key, ready=ready)
    return 0


def _prune_text(r: dict[str, Any]) -> str:
    lines = [f"run {r['run']}: pruned from {r['parent']} to {r['sparsity_reached']:.1%} sparsity of its prunable weights "
             f"(asked {r['sparsity']:.0%}, {r['epochs']} epochs"
             + (f"; {r['clusters']} shared values per pruned layer)" if r.get("clusters") else ")"),
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
    child, result = pruning.prune_run(parent, args.sparsity, args.epochs, listener=progress_listener(args.quiet),
                                      clusters=args.cluster)
    print(f"run {child.name}", file=sys.stderr)
    if result["state"] != "done":
        show_result(args, {"id": child.name, **result}, child.name)
        return 1
    if not args.quiet:
        print("converting to TensorFlow Lite and measuring every variant on the test split...", file=sys.stderr)
    report = pruning.measure(child, args.tflite or ())
    show_result(args, {"id": child.name, **report}, _prune_text(report))
    return 0


def add_export(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `export` command."""
    ex = sub.add_parser("export", parents=[common], help="export a trained run (TFLite formats are checked on its test split)")
    ex.add_argument("run_id")
    ex.add_argument("--format", required=True, choices=tuple(export.FORMATS), help="what to export")
    ex.add_argument("--out", help="also copy the file into this folder (it is kept in the run's exports/ folder)")
    ex.set_defaults(func=cmd_export)


def add_serve(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `serve` command."""
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


def add_prune(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `prune` command."""
    pn = sub.add_parser("prune", parents=[common], help="make a smaller model: magnitude pruning of a finished run "
                                                          "into a new run, measured with its TFLite variants")
    pn.add_argument("run_id")
    pn.add_argument("--sparsity", type=float, default=pruning.DEFAULT_SPARSITY,
                    help="share of the convolution and dense weights set to zero, 0.05-0.95 (default 0.5)")
    pn.add_argument("--epochs", type=int, default=pruning.DEFAULT_EPOCHS,
                    help=f"fine-tuning epochs while pruning (default {pruning.DEFAULT_EPOCHS})")
    pn.add_argument("--cluster", type=int, default=pruning.DEFAULT_CLUSTERS, metavar="N",
                    help="then let each pruned layer's weights share N values (weight clustering: on the flowers "
                         "benchmark the gzipped int8 file went from 0.78x to 0.68x of the parent's at 0.5); use it "
                         f"when the file must be small to download. {', '.join(map(str, pruning.CLUSTER_CHOICES[1:]))}, "
                         f"or 0 for none (default {pruning.DEFAULT_CLUSTERS})")
    pn.add_argument("--tflite", nargs="+", choices=export.TFLITE_IDS,
                    help="TFLite variants to convert and measure (default: all four; float32 always, as the baseline)")
    pn.add_argument("--quiet", action="store_true", help="no progress on stderr")
    pn.set_defaults(func=cmd_prune)
