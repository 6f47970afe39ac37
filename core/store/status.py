"""A run's status, typed: state, timings, process, phase, figures, verdicts and links to companion and parent runs.

status.json stays the flat JSON object it always was (one key per field, a field that is None is
left out); RunStatus is how the code reads and writes it. Each key belongs to exactly one section,
so `RunStatus.from_dict(d).to_dict()` gives back d's keys. Keys no section declares (a study's own
status, or a field a newer version adds) are kept in `extra`, so nothing is ever lost on a rewrite.

A *companion* is a run trained beside another to judge it (the same network from scratch, the
adapted run without adaptation, the distilled student alone); the run names its companion in
`<role>_run` and the companion names the run in `<role>_of`. A *parent* is what a run came from:
the teacher of a distilled run, the run a pruned run was pruned from, the study of a trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")
# The companion roles: what each companion is, in words (the roles are the link fields' stems).
COMPANIONS = {
    "baseline": "the same network trained from scratch with the same epoch budget",
    "source_only": "the same run without adaptation (adaptation weight 0)",
    "student_alone": "the same student trained without its teacher",
}


@dataclass
class Timings:
    """When the run was made, started, last written and finished (time.time()), and how long it trained."""

    created: float | None = None
    updated: float | None = None
    started: float | None = None
    finished: float | None = None
    train_seconds: float | None = None


@dataclass
class Process:
    """The process that trains the run (pid and its start time) and its place in the job queue."""

    pid: int | None = None
    pid_started: int | None = None
    queue: str | None = None
    queue_position: int | None = None


@dataclass
class Progress:
    """The phase being trained, as 'phase_index of phases'."""

    phase: str | None = None
    phase_index: int | None = None
    phases: int | None = None


@dataclass
class Figures:
    """The numbers a finished run reports, its companions' beside them."""

    test_accuracy: float | None = None
    val_accuracy: float | None = None
    target_accuracy: float | None = None
    baseline_val_accuracy: float | None = None
    source_only_target_accuracy: float | None = None
    sparsity: float | None = None
    sparsity_reached: float | None = None
    prune_epochs: int | None = None
    clusters: int | None = None


@dataclass
class Verdicts:
    """What the comparisons concluded, in flags and sentences."""

    transfer_hurt: bool | None = None
    baseline_note: str | None = None
    adaptation_helped: bool | None = None
    distill_verdict: str | None = None
    pruned: bool | None = None  # the search stopped this trial early
    pruned_epoch: int | None = None
    prune_report_error: str | None = None


@dataclass
class Links:
    """Companion runs (<role>_run, and <role>_of on the companion) and parents (teacher, pruned from, study)."""

    baseline_run: str | None = None
    baseline_of: str | None = None
    source_only_run: str | None = None
    source_only_of: str | None = None
    student_alone_run: str | None = None
    student_alone_of: str | None = None
    teacher_run: str | None = None
    pruned_from: str | None = None
    study: str | None = None
    trial: int | None = None

    def companion(self, role: str) -> str | None:
        """The id of this run's companion in this role, or None."""
        return getattr(self, f"{role}_run")

    def companion_of(self) -> tuple[str, str] | None:
        """(role, run id) when this run is another run's companion, else None."""
        return next(((role, getattr(self, f"{role}_of")) for role in COMPANIONS if getattr(self, f"{role}_of")), None)


@dataclass
class RunStatus:
    """The typed status.json of a run (and of a study, whose own keys land in `extra`)."""

    state: str = "unknown"
    message: str | None = None
    detail: str | None = None  # a traceback, for the log, never shown to a visitor
    timings: Timings = field(default_factory=Timings)
    process: Process = field(default_factory=Process)
    progress: Progress = field(default_factory=Progress)
    figures: Figures = field(default_factory=Figures)
    verdicts: Verdicts = field(default_factory=Verdicts)
    links: Links = field(default_factory=Links)
    extra: dict[str, Any] = field(default_factory=dict)

    SECTIONS: ClassVar[tuple[str, ...]] = ("timings", "process", "progress", "figures", "verdicts", "links")
    TOP: ClassVar[tuple[str, ...]] = ("state", "message", "detail")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunStatus":
        """Read status.json's object (unknown keys go to `extra`)."""
        data = dict(data)
        status = cls(state=str(data.pop("state", "unknown")))  # read as written, even a state no longer known
        return status.set(**data)

    def set(self, **values: Any) -> "RunStatus":
        """Set fields by their status.json key (None clears one); keys no section declares go to `extra`."""
        owners = _OWNERS
        for key, value in values.items():
            if key == "state":
                assert value in STATES, value
                self.state = value
            elif key in self.TOP:
                setattr(self, key, value)
            elif key in owners:
                setattr(getattr(self, owners[key]), key, value)
            elif value is None:
                self.extra.pop(key, None)
            else:
                self.extra[key] = value
        return self

    def to_dict(self) -> dict[str, Any]:
        """status.json's object: every field that is set, under its own key."""
        out: dict[str, Any] = {"state": self.state}
        out |= {k: getattr(self, k) for k in self.TOP[1:] if getattr(self, k) is not None}
        for section in self.SECTIONS:
            part = getattr(self, section)
            out |= {f.name: getattr(part, f.name) for f in fields(part) if getattr(part, f.name) is not None}
        return out | self.extra

    @property
    def ended(self) -> bool:
        """True once the run ended, however it ended."""
        return self.state in FINISHED


# status.json key -> the section holding it
_OWNERS = {f.name: section for section in RunStatus.SECTIONS for f in fields(getattr(RunStatus(), section))}
