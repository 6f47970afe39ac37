"""Transfer strategies as data: which part of the backbone trains in which phase, at what rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from core.config import RunConfig


@dataclass(frozen=True)
class Phase:
    """One fit() call: what is trainable and how long/fast it trains."""

    name: str
    epochs: int
    learning_rate: float
    # "none": the backbone is frozen; "all": everything trains; "top": the top N backbone layers.
    base_trainable: str
    top_layers: int = 0


@dataclass(frozen=True)
class Strategy:
    """A transfer strategy: plain-language explanation plus the phases it trains."""

    id: str
    label: str
    sentence: str
    use_when: str
    # The weights the backbone starts from; None means the user's choice is kept.
    forced_weights: str | None
    phases: Callable[["RunConfig"], list[Phase]]


def _feature_extraction(c: "RunConfig") -> list[Phase]:
    return [Phase("head", c.epochs, c.learning_rate, "none")]


def _fine_tune(c: "RunConfig") -> list[Phase]:
    # The head first: a randomly initialised head would send large gradients into the
    # pretrained layers and wreck them. Then the top layers at a lower rate.
    return [
        Phase("head", c.epochs, c.learning_rate, "none"),
        Phase("fine_tune", c.fine_tune_epochs, c.fine_tune_learning_rate, "top", c.fine_tune_layers),
    ]


def _from_scratch(c: "RunConfig") -> list[Phase]:
    return [Phase("scratch", c.epochs, c.learning_rate, "all")]


STRATEGIES: dict[str, Strategy] = {
    s.id: s
    for s in (
        Strategy(
            id="feature_extraction",
            label="Feature extraction",
            sentence="Keep the pretrained backbone frozen and train only a new small classifier on top of it.",
            use_when="Your photos look like everyday photos and you have few of them (tens to hundreds per class).",
            forced_weights=None,
            phases=_feature_extraction,
        ),
        Strategy(
            id="fine_tune",
            label="Fine-tuning",
            sentence="Train the new classifier first, then also adjust the top layers of the backbone at a lower learning rate.",
            use_when="You have a few hundred images per class or more, and feature extraction has levelled off.",
            forced_weights=None,
            phases=_fine_tune,
        ),
        Strategy(
            id="from_scratch",
            label="From scratch",
            sentence="Train the whole network from random weights, with no pretrained knowledge.",
            use_when="You want a baseline that shows how much transfer learning helps, or your images are very unlike photos.",
            forced_weights="none",
            phases=_from_scratch,
        ),
    )
}


def uses_feature_cache(config: "RunConfig", phase: Phase) -> bool:
    """True when a phase trains on cached backbone features instead of passing images through it."""
    return phase.base_trainable == "none" and (not config.augment.any() or config.augment_views > 0)


def speed_note(config: "RunConfig") -> str:
    """One sentence on how the frozen phases are trained (cached features or full passes)."""
    frozen = [p for p in STRATEGIES[config.strategy].phases(config) if p.base_trainable == "none" and p.epochs > 0]
    if not frozen:
        return "The backbone trains too, so every epoch passes each image through the whole network."
    if not config.augment.any():
        return ("The backbone is frozen and there is no augmentation, so each image goes through the backbone "
                "once and the classifier trains on the stored result: much faster.")
    if config.augment_views > 0:
        return (f"The backbone is frozen: {config.augment_views} augmented copies of each image go through it once "
                "and the classifier trains on the stored results.")
    return ("The backbone is frozen but augmentation makes new copies every epoch, so each epoch passes every "
            "image through the backbone (slower; prepared augmented copies on the Model page are faster).")


def get(strategy_id: str) -> Strategy:
    """Return the strategy with this id (the id must have been validated)."""
    return STRATEGIES[strategy_id]


def ids() -> tuple[str, ...]:
    """All strategy ids, in display order."""
    return tuple(STRATEGIES)
