"""What every command shares: the parser class, stdout for a command's own output, progress on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.spec import config as config_mod


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one sentence and exit 2, like every bad input."""

    def error(self, message: str) -> None:  # one sentence, exit 2, like every bad input
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def write_stdout(args: argparse.Namespace, text: str, end: str = "\n") -> None:
    """A command's own output: the real stdout (library prints are routed to stderr while a command runs)."""
    print(text, end=end, file=getattr(args, "stdout", None) or sys.stdout, flush=True)


def show_result(args: argparse.Namespace, data: Any, text: str) -> None:
    write_stdout(args, json.dumps(data, indent=2) if args.json else text)


def import_progress() -> Any:
    """A one-line progress display on stderr when it is a terminal; None otherwise."""
    if not sys.stderr.isatty():
        return None
    return lambda fraction, text: print(f"\r{fraction:4.0%} {text}\033[K", end="\n" if fraction >= 1 else "",
                                        file=sys.stderr, flush=True)


def progress_listener(quiet: bool):
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


def read_config(name: str) -> config_mod.RunConfig:
    """A config file written by `python -m core config` (or by hand)."""
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"The config file '{path}' does not exist; create one with 'python -m core config'.")
    return config_mod.RunConfig.from_json(path.read_text(encoding="utf-8"))
