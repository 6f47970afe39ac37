"""`sweep` and `bench`: looking after a hosted install, and benchmarks."""

from __future__ import annotations

import argparse
from typing import Any

from core import bench
from core.cli.common import show_result
from core.service import hosting
from core.store.files import workspace


def cmd_sweep(args: argparse.Namespace) -> int:
    ttl = None if args.ttl_hours is None else args.ttl_hours * 3600
    removed = hosting.sweep(workspace(args.workspace), ttl=ttl)
    show_result(args, removed, f"Removed {len(removed)} expired session workspace(s).")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    result = bench.run(args.name, keras_cache=args.keras_cache)
    show_result(args, result, bench.describe(result))
    return 0


def add_sweep(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `sweep` command."""
    sw = sub.add_parser("sweep", parents=[common], help="hosted mode: remove the anonymous session workspaces unused "
                                                         "for longer than their time to live (for a cron job)")
    sw.add_argument("--ttl-hours", type=float, help="default: TL_SESSION_TTL_HOURS, else 12")
    sw.set_defaults(func=cmd_sweep)


def add_bench(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `bench` command."""
    bn = sub.add_parser("bench", parents=[common], help="run a benchmark")
    bn.add_argument("name", choices=tuple(bench.BENCHMARKS))
    bn.add_argument("--keras-cache", help="a folder of Keras weight files to seed the benchmark's empty cache with")
    bn.set_defaults(func=cmd_bench)
