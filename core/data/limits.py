"""The caps of an import, and the refusal that stops a whole import (as opposed to one skipped file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from core import settings
from core.errors import DatasetError

# Progress of a long step: (fraction done, what is happening, in words).
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class ImportLimits:
    """Caps that make a hostile archive fail with a sentence instead of filling the disk."""

    max_members: int = 20_000
    max_file_bytes: int = 50 * 2**20
    max_total_bytes: int = 2 * 2**30
    max_ratio: float = 100.0  # uncompressed / compressed, per member
    max_pixels: int = 50_000_000  # Pillow's decompression-bomb guard, made an error
    # The ratio is checked only above this size: a tiny plain image legitimately packs very well,
    # and below it the per-file and total caps already bound what an expansion can cost.
    ratio_floor_bytes: int = 2**20

    @classmethod
    def from_env(cls) -> "ImportLimits":
        """The defaults, overridden by TL_IMPORT_MAX_MEMBERS, _MAX_FILE_MB, _MAX_TOTAL_MB, _MAX_RATIO, _MAX_PIXELS."""
        return cls(**settings.import_limits(DatasetError))


class Refused(DatasetError):
    """A source-wide refusal (unsafe path, bomb, over a cap): the whole import stops."""


def size_words(n: int) -> str:
    """A size in words: 2.0 GB, 50 MB, 300 KB, 12 bytes."""
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}" if unit == "GB" else f"{n / size:,.0f} {unit}"
    return f"{n} bytes"
