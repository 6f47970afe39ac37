"""Earlier runs as starting points: the finished runs of a workspace whose trained backbone (or its
weights after the first epoch) a new run can start from. Composed here, above the run store, so the
static backbone registry never reads the workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.spec import backbones
from core.store import runs
from core.store.files import read_json


@dataclass(frozen=True)
class RunSource:
    """A finished run of this workspace whose backbone can start a new run (domain weights)."""

    run_id: str
    backbone: str
    dataset_id: str
    classes: int
    test_accuracy: float | None
    has_early_checkpoint: bool

    @property
    def label(self) -> str:
        """One line for selectors."""
        acc = f", test accuracy {self.test_accuracy:.0%}" if self.test_accuracy is not None else ""
        return f"{self.run_id[-12:]}: {backbones.get(self.backbone).label} on {self.dataset_id}{acc}"


def run_sources(ws: Path) -> list[RunSource]:
    """Finished runs of this workspace with a saved model, newest first: sources of domain-specific weights."""
    out = []
    for r in runs.list_runs(ws):
        if r.state != "done" or r.config is None or not (r.path / "model.keras").is_file():
            continue
        try:
            classes = len(read_json(r.path / "split.json")["classes"])
        except (OSError, ValueError, KeyError):
            classes = 0
        out.append(RunSource(r.id, r.config.backbone, r.config.dataset_id, classes,
                             (r.evaluation or {}).get("accuracy"),
                             (r.path / "checkpoints" / runs.EARLY_CHECKPOINT).is_file()))
    return out
