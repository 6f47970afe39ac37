"""Benchmarks (`python -m core bench NAME`): whole commands timed end to end, in a fresh workspace and
Keras home, each its own module. Their figures go in issue notes; no test times anything.
"""

from __future__ import annotations

from typing import Any, Callable

from core.bench import (audio, distill, domain, export, imports, prune, quick, scratch, serve, text, train, tune,
                        tune_shared, windows)
from core.errors import TransferLabError

# name -> (run(keras_cache) -> figures, describe(figures) -> text)
BENCHMARKS: dict[str, tuple[Callable[[str | None], dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
    "quick-shapes": (quick.run, quick.describe),
    "import": (lambda keras_cache: imports.run(), imports.describe),
    "train": (lambda keras_cache: train.run(), train.describe),
    "export": (export.run, export.describe),
    "distill": (distill.run, distill.describe),
    "domain": (domain.run, domain.describe),
    "tune": (tune.run, tune.describe),
    "tune-shared": (tune_shared.run, tune_shared.describe),
    "prune": (prune.run, prune.describe),
    "serve": (serve.run, serve.describe),
    "scratch-bn": (scratch.run, scratch.describe),
    "audio": (audio.run, audio.describe),
    "text": (text.run, text.describe),
    "windows": (windows.run, windows.describe),
}


def run(name: str, keras_cache: str | None = None) -> dict[str, Any]:
    """Run a named benchmark and return its figures."""
    if name not in BENCHMARKS:
        raise TransferLabError(f"There is no benchmark '{name}'; available: {', '.join(BENCHMARKS)}.")
    return BENCHMARKS[name][0](keras_cache)


def describe(result: dict[str, Any]) -> str:
    """One readable paragraph of benchmark figures."""
    return BENCHMARKS[result["benchmark"]][1](result)
