"""The closed vocabulary of training events, written one JSON line each to events.jsonl."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Union


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not an error (e.g. a backbone fallback)."""

    message: str
    type: str = field(default="notice", init=False)


@dataclass(frozen=True)
class PhaseStart:
    """A phase (one fit) begins."""

    phase: str
    index: int  # 1-based
    phases: int
    epochs: int
    steps: int  # batches per epoch
    trainable_params: int
    type: str = field(default="phase_start", init=False)


@dataclass(frozen=True)
class FeaturePass:
    """Backbone features for a frozen phase were computed once (or reused from the cache)."""

    phase: str
    images: int
    computed: int  # how many were not in the cache yet
    views: int  # augmented views per image (0: no augmentation)
    seconds: float
    type: str = field(default="features", init=False)


@dataclass(frozen=True)
class BatchEnd:
    """A training batch finished."""

    phase: str
    epoch: int  # 1-based within the phase
    batch: int  # 1-based
    steps: int
    loss: float
    accuracy: float
    type: str = field(default="batch_end", init=False)


@dataclass(frozen=True)
class EpochEnd:
    """An epoch finished; metrics hold loss, accuracy, val_loss, val_accuracy."""

    phase: str
    epoch: int
    epochs: int
    metrics: dict[str, float]
    seconds: float
    type: str = field(default="epoch_end", init=False)


@dataclass(frozen=True)
class PhaseEnd:
    """A phase finished, ran out of patience, or was cancelled."""

    phase: str
    epochs_run: int
    stopped_early: bool
    type: str = field(default="phase_end", init=False)


Event = Union[Notice, PhaseStart, FeaturePass, BatchEnd, EpochEnd, PhaseEnd]
Listener = Callable[[Event], None]


def to_dict(event: Event) -> dict[str, Any]:
    """Plain data for JSON."""
    return asdict(event)
