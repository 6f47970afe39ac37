"""Command line: python -m core ... (the same core functions the pages call).

One module per command group (data, models, configure, training, search, results, ship, admin),
each with its commands and the functions that add them to the parser; common holds what they
share; this module the parser and main(). Exit 0 on success; 2 on bad input with one plain
sentence on stderr; 1 on an internal error. Everything is imported at the top: no core module
imports TensorFlow until it is used.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from typing import Sequence

from core import settings
from core.cli import admin, configure, data, models, results, search, ship, training
from core.cli.common import Parser
from core.errors import TransferLabError


# The commands in the order --help lists them.
_COMMANDS = (
    data.add_dataset,
    models.add_backbones,
    models.add_strategies,
    models.add_weights,
    configure.add_config,
    configure.add_recommend,
    configure.add_code,
    models.add_sees,
    training.add_train,
    training.add_lr_find,
    search.add_tune,
    search.add_study,
    training.add_resume,
    results.add_evaluate,
    results.add_predict,
    results.add_runs,
    admin.add_sweep,
    ship.add_export,
    ship.add_serve,
    ship.add_prune,
    admin.add_bench,
    models.add_transfer_map,
)


def parser() -> argparse.ArgumentParser:
    """The argument parser (kept separate so tests and docs can read it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", help="workspace folder (default: $TL_WORKSPACE or ./workspace)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = Parser(prog="python -m core", description="TransferLab: transfer learning for images from the command line.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in _COMMANDS:
        add(sub, common)
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
