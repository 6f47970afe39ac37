"""What a training method is: the small protocol the trainer asks, phase by phase.

A strategy (core.spec.strategies) says *which part trains in which phase*; its entry names a
method (`Strategy.method`), which says *how a phase trains*: the data it sees, the model that is
fitted, the loss. The trainer (core.engine.training) is one loop over the strategy's phases that
asks the run's method, in this order:

    prepare(config, settle)  the config as trained: settle() resolves the weights and the epoch cap;
                             a method may keep its backbone first or add what it needs after
    build(run)               the classifier (run.model, run.base), and what the method needs beside
                             it (a teacher, layers copied from another network)
    open(run, phase)         what trains in this phase
    data(run, phase, epochs) -> PhaseData: the Keras model to fit, its training and validation data
    compile(run, trainer, rate)
    finish(run_dir, config, train)  after a finished run: companion runs, the method's report

core.engine.plain.Plain is the usual method (cached features for a frozen backbone, else images)
and the class the others extend; the registry of methods is core.engine.methods. `companion()`
is the one way a run trains a companion beside itself (the same network from scratch, the
adapted run without adaptation, the student without its teacher).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol

import numpy as np

from core import events
from core.spec import strategies
from core.spec.config import RunConfig
from core.spec.strategies import Phase
from core.store import runs

# settle(config) -> (config, notices): the trainer's weights fallback and epoch cap.
Settle = Callable[[RunConfig], "tuple[RunConfig, list[str]]"]
# train(config, run_dir) -> result: trains one more run in this process (a companion), as run() does.
Train = Callable[[RunConfig, Path], dict]


@dataclass
class Run:
    """One run being trained, as every method sees it: the config as trained, its data and its model."""

    config: RunConfig
    run_dir: Path
    ws: Path
    info: dict[str, Any]  # the dataset record
    root: Path  # the dataset's folder
    parts: dict[str, list]  # the split: train / val / test items (relative path, class index)
    target: dict[str, Any] | None  # the target-domain parts (core.data.domains), when the run has a target
    emit: events.Listener
    resume: bool = False
    scope: Callable[[], ContextManager[Any]] = contextlib.nullcontext  # the tf.distribute scope, if any
    model: Any = None
    base: Any = None
    # What a method keeps between its hooks for this run (a teacher, the copied layers' names, the image pipelines).
    memo: dict[str, Any] = field(default_factory=dict)
    # A study's core.engine.trials.Shared when this run is a trial that trains its head alone: the backbone, the
    # cached features and the latency are shared with the study's other trials (None otherwise).
    shared: Any = None

    @cached_property
    def labels(self) -> np.ndarray:
        """The training split's class indices."""
        return np.array([label for _, label in self.parts["train"]])

    @cached_property
    def val_labels(self) -> np.ndarray:
        """The validation split's class indices."""
        return np.array([label for _, label in self.parts["val"]])

    @cached_property
    def class_weight(self) -> dict[int, float] | None:
        """Keras class_weight for the training labels, as the config asks."""
        return strategies.class_weights(self.config.class_weights, self.labels)


@dataclass
class PhaseData:
    """What one phase fits: the Keras model, its data, and the steps per epoch (None: one pass over the data)."""

    trainer: Any
    train: Any
    val: Any
    steps_per_epoch: int | None = None
    use_class_weight: bool = True  # False where the method weighs classes itself (distillation's packed labels)


class Method(Protocol):
    """A training method: what the trainer asks it, in order (core.engine.plain.Plain is the usual one)."""

    id: str  # the name a strategy entry gives (Strategy.method)
    # True when an earlier run's model.keras is what the method starts from (copied layers, a teacher): the
    # code export ships it beside train.py.
    ships_source_run: bool

    def prepare(self, config: RunConfig, settle: Settle) -> tuple[RunConfig, list[str]]:
        """The config as trained, with a sentence for each change (settle: weights and epoch cap)."""

    def build(self, run: Run) -> None:
        """Build run.model and run.base, and whatever the method needs beside them."""

    def open(self, run: Run, phase: Phase) -> None:
        """Make trainable what this phase trains."""

    def data(self, run: Run, phase: Phase, epochs: int) -> PhaseData:
        """The model to fit in this phase and its data."""

    def compile(self, run: Run, trainer: Any, rate: Any) -> None:
        """Compile the phase's model."""

    def finish(self, run_dir: Path, config: RunConfig, train: Train) -> dict[str, Any]:
        """After a run finished: its companions and the method's report; returns fields for the result."""


def companion(run_dir: Path, role: str, config: RunConfig, train: Train) -> tuple[Path, dict]:
    """Train a companion of run_dir in this role (core.store.status.COMPANIONS): a run of its own, linked both ways.

    Returns the companion's folder and its result (its "state" says whether it finished)."""
    import tf_keras as keras

    companion_dir = runs.create_run(config, run_dir.parent.parent)
    runs.link_companion(run_dir, role, companion_dir)
    keras.backend.clear_session()  # the run's models are done with: free them before the companion builds its own
    return companion_dir, train(config, companion_dir)
