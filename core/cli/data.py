"""`dataset`: import, create, list, show and delete datasets."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from core.cli.common import Parser, import_progress, show_result
from core.data import health, importer, samples, sounds
from core.data.limits import ImportLimits
from core.errors import TransferLabError
from core.spec import kinds as spec_kinds
from core.store import datasets
from core.store.files import workspace


def _dataset_summary(info: dict) -> str:
    counts = ", ".join(f"{c}: {n}" for c, n in info["counts"].items())
    words = spec_kinds.of(info).items
    lines = [info["id"], f"  {sum(info['counts'].values())} {words} in {len(info['classes'])} classes ({counts})"]
    if not info["classes"]:  # a target import: unlabelled images from where the model will be used
        lines[1] = f"  {len(info.get('unlabeled', []))} unlabelled images from where the model will be used (no classes)"
        lines.append(f"  {health.unlabelled_report(info)['note']}")
    if "window_seconds" in info:
        lines.append(f"  a recording longer than {sounds.LONG_WINDOWS * info['window_seconds']:g} s is cut into "
                     f"{info['window_seconds']:g}-second pieces, each one example")
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


def _columns(args: argparse.Namespace) -> dict[str, str]:
    """The table's columns and encoding as given (.csv / .tsv / .jsonl of texts); guessed when not given."""
    given = {"text_column": args.text_column, "label_column": args.label_column, "encoding": args.encoding}
    return {k: v for k, v in given.items() if v}


def cmd_dataset(args: argparse.Namespace) -> int:
    ws = workspace(args.workspace)
    if args.dataset_cmd == "import":
        info = importer.import_path(args.src, ws, name=args.name, limits=_import_limits(args),
                                    unlabeled=args.unlabeled, progress=import_progress(),
                                    role="target" if args.target else "source", columns=_columns(args),
                                    window=args.window)
    elif args.dataset_cmd == "sample":
        info = samples.import_sample(args.name, ws, progress=import_progress())
    elif args.dataset_cmd == "show":
        info = datasets.load_dataset(args.dataset_id, ws)
        report = health.health_report(info)
        show_result(args, {"id": info["id"], "name": info["name"], "source": info["source"], "classes": info["classes"],
                    "warnings": info["warnings"], "skipped": info["skipped"], "report": report},
             _dataset_summary(info) + f"\n  imbalance ratio {report['imbalance_ratio']}; duplicates: "
             f"{report['duplicates']['within']} within classes, {report['duplicates']['across']} across classes")
        return 0
    elif args.dataset_cmd == "delete":
        datasets.dataset_path(args.dataset_id, ws)
        if not args.yes:
            raise TransferLabError(f"Deleting '{args.dataset_id}' cannot be undone; add --yes to confirm.")
        datasets.delete_dataset(args.dataset_id, ws)
        show_result(args, {"id": args.dataset_id, "deleted": True}, f"deleted {args.dataset_id}")
        return 0
    else:
        found = datasets.list_datasets(ws)
        show_result(args, [{"id": d["id"], "name": d["name"], "counts": d["counts"]} for d in found],
             "\n".join(f"{d['id']}  {sum(d['counts'].values())} images, {len(d['classes'])} classes" if d["classes"]
                       else f"{d['id']}  {len(d.get('unlabeled', []))} unlabelled images (a target)" for d in found)
             or "No datasets yet.")
        return 0
    brief = {k: info[k] for k in ("id", "name", "classes", "counts", "skipped", "warnings")}
    brief |= {"predefined_split": bool(info.get("predefined_split")), "unlabeled": len(info.get("unlabeled", []))}
    brief |= {"role": info.get("role", "source")}
    if "window_seconds" in info:
        brief |= {"window_seconds": info["window_seconds"]}
    show_result(args, brief, _dataset_summary(info))
    return 0


def add_dataset(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `dataset` command and its sub-commands."""
    ds = sub.add_parser("dataset", help="import or create datasets")
    ds_sub = ds.add_subparsers(dest="dataset_cmd", required=True, parser_class=Parser)
    imp = ds_sub.add_parser("import", parents=[common], help="import a folder of class folders or a .zip of one, or a table of texts")
    imp.add_argument("src", help="a folder of class folders, or a .zip / .tar.gz of one (train/ val/ test/ tops keep their "
                                 "split), or a .csv / .tsv / .jsonl table of texts with a header (a split column is kept)")
    imp.add_argument("--name")
    imp.add_argument("--unlabeled", help="a folder or archive of unlabeled images of the same kind, kept with the dataset")
    imp.add_argument("--target", action="store_true",
                     help="import every image, in any folders, without labels: images from where the model will be "
                          "used, the target of a domain-adaptation run (at least 20)")
    low, high = sounds.WINDOW_RANGE
    imp.add_argument("--window", type=float, metavar="SECONDS",
                     help=f"sounds: a long recording is cut into pieces of this many seconds, each piece one example "
                          f"({low:g} to {high:g}; default {sounds.WINDOW_SECONDS:g}). A model hears one second at a "
                          "time: training with time shift takes random seconds of a longer piece, a prediction "
                          "averages its seconds")
    imp.add_argument("--text-column", help="a table's column of texts (default: the one named text, sentence, …)")
    imp.add_argument("--label-column", help="a table's column of labels (default: the one named label, class, …)")
    imp.add_argument("--encoding", help="a table's text encoding (default: UTF-8, else Windows-1252 / Latin-1)")
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
