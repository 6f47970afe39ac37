"""The verdict of a finished run: its accuracy against guessing and against the baseline that matters for its method.

A number alone reads as success (a green "20 % test accuracy" with five classes is guessing). Every
face (the Train page, Compare, `python -m core evaluate`) shows this verdict instead, so a result near
chance or far below its baseline is never announced as a success and always says what to try.

The baseline of each method, when the run has one:
  - a pruned run: its parent before pruning (test accuracy);
  - a distilled student: the same student trained alone (test accuracy);
  - a domain-adapted run with its companion: the same run without adaptation (target-domain accuracy);
  - a run with a from-scratch companion: that network trained from scratch (test accuracy);
  - a layer transfer from an earlier run on the same classes: that source run (test accuracy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RunNotFound
from core.spec import strategies
from core.store import runs
from core.store.files import read_json

# Within this many points of guessing, a model has not learned to tell the classes apart.
NEAR_CHANCE_POINTS = 10.0
# More than this many points below its baseline, a method has cost more than it is worth.
BELOW_BASELINE_POINTS = 5.0

# What the baseline is called and what to try when the run falls far below it, per kind of baseline.
BASELINES = {
    "pruned": ("the same model before pruning",
               "Try a lower sparsity (fewer weights set to zero) or more fine-tuning epochs."),
    "student_alone": ("the same student trained alone",
                      "Try a stronger teacher, a higher temperature, or more epochs."),
    "source_only": ("the same network without adaptation",
                    "Try a smaller adaptation weight, the other adaptation strategy, or more target images."),
    "scratch": ("the same network trained from scratch",
                "Try fine-tuning, or a backbone whose pretraining is closer to your images."),
    "transfer_source": ("the network its layers were copied from",
                        "Try distillation instead, or fine-tune the source network itself."),
}
# Companion runs exist to be compared against: their verdict says so rather than advising.
COMPANION_FIELDS = {
    "baseline_of": "the from-scratch baseline of run {}",
    "source_only_of": "the run without adaptation of run {}",
    "student_alone_of": "the student trained alone for run {}",
}


@dataclass
class Verdict:
    """How a finished run did, in plain words: level is 'good', 'warn' or 'bad' (never shown green unless 'good')."""

    level: str
    headline: str
    details: list[str] = field(default_factory=list)
    accuracy: float | None = None
    chance: float | None = None
    baseline: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)

    def text(self) -> str:
        """The headline and the details as one paragraph."""
        return " ".join([self.headline, *self.details])


def _status_of(run_id: str | None, ws: Path) -> dict[str, Any]:
    if not run_id:
        return {}
    try:
        return runs.read_status(runs.run_path(run_id, ws))
    except RunNotFound:
        return {}


def _classes(run_dir: Path) -> list[str]:
    for name in ("eval.json", "split.json"):
        path = run_dir / name
        if path.is_file():
            classes = read_json(path).get("classes")
            if classes:
                return list(classes)
    return []


def baseline_of(run_dir: Path, status: dict[str, Any], ws: Path) -> dict[str, Any] | None:
    """The baseline that matters for this run's method, with its accuracy; None when it has none (yet)."""
    config = runs.load_config(run_dir)

    def found(kind: str, run_id: str | None, accuracy: Any, mine: Any, measure: str = "test") -> dict[str, Any] | None:
        if not isinstance(accuracy, (int, float)) or not isinstance(mine, (int, float)):
            return None
        name, advice = BASELINES[kind]
        return {"kind": kind, "run": run_id, "name": name, "accuracy": float(accuracy), "mine": float(mine),
                "measure": measure, "advice": advice}

    if status.get("pruned_from"):
        parent = status["pruned_from"]
        return found("pruned", parent, _status_of(parent, ws).get("test_accuracy"), status.get("test_accuracy"))
    if status.get("student_alone_run"):
        alone = status["student_alone_run"]
        return found("student_alone", alone, _status_of(alone, ws).get("test_accuracy"), status.get("test_accuracy"))
    if status.get("source_only_run"):
        return found("source_only", status["source_only_run"], status.get("source_only_target_accuracy"),
                     status.get("target_accuracy"), "target")
    if status.get("baseline_run"):
        base = status["baseline_run"]
        return found("scratch", base, _status_of(base, ws).get("test_accuracy"), status.get("test_accuracy"))
    if strategies.get(config.strategy).method == "transfer" and config.source_run:
        try:
            source_dir = runs.run_path(config.source_run, ws)
        except RunNotFound:
            return None
        if _classes(source_dir) != _classes(run_dir):
            return None  # a source trained on other classes has no comparable accuracy
        return found("transfer_source", config.source_run, runs.read_status(source_dir).get("test_accuracy"),
                     status.get("test_accuracy"))
    return None


def _stopping(run_dir: Path, status: dict[str, Any]) -> str | None:
    """Why training ended before its planned epochs, when early stopping ended it."""
    if status.get("pruned_from"):
        return None  # a pruning fine-tunes for its own few epochs, not the parent's plan
    config = runs.load_config(run_dir)
    try:
        planned = sum(p.epochs for p in strategies.get(config.strategy).phases(config))
    except Exception:  # noqa: BLE001 - a run of a strategy no longer known: say nothing rather than guess
        return None
    events = runs.read_events(run_dir)
    ran = sum(1 for e in events if e.get("type") == "epoch_end")
    early = any(e.get("type") == "phase_end" and e.get("stopped_early") for e in events)
    if not early or ran >= planned:
        return None
    return (f"Training stopped after {ran} of up to {planned} epochs because the validation loss had not improved "
            f"for {config.patience} epochs in a row (early stopping), so more epochs of the same would not have helped.")


def _compared(base: dict[str, Any]) -> str:
    """The run against its baseline, in one sentence with the gap in points."""
    what = "target-domain accuracy" if base["measure"] == "target" else "test accuracy"
    gap = 100 * (base["mine"] - base["accuracy"])
    return f"Its {what} is {base['mine']:.1%} against {base['accuracy']:.1%} for {base['name']} ({gap:+.1f} points)."


def judge(run_dir: Path) -> Verdict | None:
    """The verdict of a finished run; None while it is not finished with a test accuracy."""
    status = runs.read_status(run_dir)
    accuracy = status.get("test_accuracy")
    if status.get("state") != "done" or not isinstance(accuracy, (int, float)):
        return None
    ws = run_dir.parent.parent
    classes = _classes(run_dir)
    chance = 1 / len(classes) if classes else None
    details = [s for s in [_stopping(run_dir, status)] if s]
    role = next((words.format(status[k]) for k, words in COMPANION_FIELDS.items() if status.get(k)), None)
    if chance is not None and 100 * (accuracy - chance) < NEAR_CHANCE_POINTS:
        headline = (f"Test accuracy {accuracy:.1%} is about what guessing gets with {len(classes)} classes "
                    f"({chance:.1%}): this model has not learned to tell them apart.")
        if role:
            details.insert(0, f"This run is {role}; it is there to be compared with, so a weak result is "
                              "information, not a failure.")
            return Verdict("warn", headline, details, accuracy, chance, None)
        details.append("Try a pretrained backbone (offline, one whose weights are on this computer), more epochs, "
                       "more images per class, or a higher learning rate.")
        base = baseline_of(run_dir, status, ws)
        if base is not None:  # still name what it was measured against (the companion trained beside it)
            details.insert(0, _compared(base))
        return Verdict("bad", headline, details, accuracy, chance, base)
    base = None if role else baseline_of(run_dir, status, ws)
    vs_chance = f" (guessing would get {chance:.1%})" if chance is not None else ""
    headline = f"Test accuracy {accuracy:.1%}{vs_chance}."
    level = "good"
    if base is not None:
        gap = 100 * (base["mine"] - base["accuracy"])
        compared = _compared(base)
        if gap < -BELOW_BASELINE_POINTS:
            level = "warn"
            details.insert(0, compared + " " + base["advice"])
        elif base["measure"] == "target" and chance is not None and 100 * (base["mine"] - chance) < NEAR_CHANCE_POINTS:
            level = "warn"  # adapted, yet guessing on the images where it will be used: beating its companion is not enough
            details.insert(0, f"{compared} On the images from where it will be used, {base['mine']:.1%} is about what "
                              f"guessing gets ({chance:.1%}). {base['advice']}")
        else:
            details.insert(0, compared)
    if role:
        details.insert(0, f"This run is {role}.")
    return Verdict(level, headline, details, accuracy, chance, base)
