"""Transfer strategies as data: which part of the backbone trains in which phase, at what rate.

Also what surrounds them: the picture of each strategy (which layer groups are frozen in which
phase), the recommender, and the class weights. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from core.spec import backbones

if TYPE_CHECKING:
    from core.spec.config import RunConfig


@dataclass(frozen=True)
class Phase:
    """One fit() call: what is trainable and how long/fast it trains."""

    name: str
    epochs: int
    learning_rate: float
    # "none": the backbone is frozen; "all": everything trains; "top": the top N weighted layers;
    # "groups": the top N convolutional groups (core.modeling.conv_groups); "difference": the layers
    # not copied from the source (layer_transfer, core.engine.transfer).
    base_trainable: str
    top_layers: int = 0
    top_groups: int = 0
    label: str = ""  # what happens, in words


@dataclass(frozen=True)
class Strategy:
    """A transfer strategy: plain-language explanation plus the phases it trains."""

    id: str
    label: str
    sentence: str
    use_when: str
    # The weights the backbone starts from; None means the user's choice is kept.
    # "run" means an earlier run's weights (config.source_run), loaded as `source` says.
    forced_weights: str | None
    phases: Callable[["RunConfig"], list[Phase]]
    # Where an earlier run's weights come from: "model" (its trained backbone) or "early" (its
    # backbone after the first epoch); None when the strategy does not start from a run.
    source: str | None = None
    # The settings beyond the first phase's that this strategy reads (the page shows only those).
    settings: tuple[str, ...] = ()
    min_fine_tune_epochs: int = 0
    # Domain adaptation: the strategy lines up a target dataset's features with the source's
    # (core.engine.adaptation); "adversarial" (DANN) or "discrepancy" (DAN's MMD, or CORAL).
    adapts: str | None = None
    # The training method that trains each phase (core.engine.methods): "plain" (the classifier on its
    # labels, on cached features or images), "adaptation", "transfer" (copied layers), "distillation".
    method: str = "plain"
    # A method about this very backbone (layer transfer, distillation): without its ImageNet weights the run is
    # refused instead of falling back to another backbone or silently starting from random weights.
    keeps_backbone: bool = False
    # The kinds of data (core.spec.kinds ids) the strategy does not apply to, each with the sentence that
    # says why (config/train refuse with it; the Model page shows it): (kind id, sentence) pairs.
    not_for: tuple[tuple[str, str], ...] = ()
    # The settings the strategy measured best with, which `config` (config.settle) and the Model page apply where the
    # person has not set them (config.strategy_settings); ("augment", ((name, on), ...)) adds augmentations to the
    # preset's. (Pairs, not dicts, so a Strategy stays hashable.)
    recipe: tuple[tuple[str, Any], ...] = ()


def _head(c: "RunConfig") -> Phase:
    return Phase("head", c.epochs, c.learning_rate, "none", label="Train the new head; the backbone is frozen")


def _top(c: "RunConfig") -> Phase:
    if c.fine_tune_unit == "groups":
        return Phase("fine_tune", c.fine_tune_epochs, c.fine_tune_learning_rate, "groups", top_groups=c.fine_tune_layers,
                     label=f"Also train the top {c.fine_tune_layers} group(s) of the backbone, at a lower rate")
    return Phase("fine_tune", c.fine_tune_epochs, c.fine_tune_learning_rate, "top", c.fine_tune_layers,
                 label=f"Also train the top {c.fine_tune_layers} layers of the backbone, at a lower rate")


def _feature_extraction(c: "RunConfig") -> list[Phase]:
    return [_head(c)]


def _fine_tune(c: "RunConfig") -> list[Phase]:
    # The head first: a randomly initialised head would send large gradients into the
    # pretrained layers and wreck them. Then the top layers at a lower rate.
    return [_head(c), _top(c)]


def _gradual_unfreeze(c: "RunConfig") -> list[Phase]:
    # ULMFiT's gradual unfreezing: the most specific (top) group first, the generic stem last,
    # so every step adapts a little more without disturbing what is below too early.
    n = backbones.group_count(c.backbone)
    steps = [
        Phase(f"unfreeze_{k}", c.fine_tune_epochs, c.fine_tune_learning_rate, "groups", top_groups=k,
              label=f"Open group {n - k} as well (the top {k} of {n} groups train)")
        for k in range(1, n)
    ]
    steps.append(Phase("unfreeze_stem", c.fine_tune_epochs, c.fine_tune_learning_rate, "groups", top_groups=n,
                       label="Open the stem too: the whole backbone trains"))
    return [_head(c), *steps]


def _from_scratch(c: "RunConfig") -> list[Phase]:
    return [Phase("scratch", c.epochs, c.learning_rate, "all", label="Train the whole network from random weights")]


def _domain_weights(c: "RunConfig") -> list[Phase]:
    phases = [_head(c)]
    if c.fine_tune_epochs > 0:
        phases.append(_top(c))
    return phases


def _weight_init(c: "RunConfig") -> list[Phase]:
    return [Phase("train_all", c.epochs, c.learning_rate, "all",
                  label="Train the whole network, starting from the earlier run's early weights")]


def _layer_transfer(c: "RunConfig") -> list[Phase]:
    # Net2Net-style growth: what both networks share is copied and held still while the rest (the
    # difference layers and the new head) learns to fit around it; then everything at a lower rate.
    return [Phase("difference", c.epochs, c.learning_rate, "difference",
                  label="Train the difference layers and the new head; the shared layers copied from the source stay frozen"),
            Phase("train_all", c.fine_tune_epochs, c.fine_tune_learning_rate, "all",
                  label="Open everything, shared layers too, at a lower rate")]


def _distill(c: "RunConfig") -> list[Phase]:
    # A student without pretrained weights learns everything from the teacher and the labels; a
    # pretrained one first fits its new head to the teacher, then optionally its top layers.
    if c.weights == "none":
        return [Phase("distill", c.epochs, c.learning_rate, "all",
                      label="Train the whole student from random weights on the teacher's softened answers and the labels")]
    phases = [Phase("distill_head", c.epochs, c.learning_rate, "none",
                    label="Train the student's new head on the teacher's softened answers and the labels; its backbone is frozen")]
    if c.fine_tune_epochs > 0:
        top = _top(c)
        phases.append(Phase("distill_fine_tune", top.epochs, top.learning_rate, top.base_trainable, top.top_layers,
                            top.top_groups, top.label + ", still learning from the teacher"))
    return phases


def _adapt(c: "RunConfig") -> list[Phase]:
    # The frozen backbone's features of source and target images are computed once; the
    # adaptation layer and the head train on them. Opening the top of the backbone (fine-tune
    # epochs) lets the backbone itself move towards the target for larger shifts.
    phases = [Phase("adapt", c.epochs, c.learning_rate, "none",
                    label="Train the head on labelled source images while lining up source and target features")]
    if c.fine_tune_epochs > 0:
        top = _top(c)
        phases.append(Phase("adapt_fine_tune", top.epochs, top.learning_rate, top.base_trainable, top.top_layers,
                            top.top_groups, label=top.label + ", still lining up source and target"))
    return phases


_TOP = ("fine_tune_epochs", "fine_tune_learning_rate", "fine_tune_layers", "fine_tune_unit")

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
            settings=_TOP,
            min_fine_tune_epochs=1,
        ),
        Strategy(
            id="gradual_unfreeze",
            label="Gradual unfreezing",
            sentence="Train the new classifier first, then open the backbone one group of layers at a time, from the "
                     "top down, ending with the stem, a few epochs per step.",
            use_when="Your images are unlike everyday photos (microscopy, X-rays, drawings, satellite images) and you "
                     "have at least a hundred per class.",
            forced_weights=None,
            phases=_gradual_unfreeze,
            settings=("fine_tune_epochs", "fine_tune_learning_rate"),
            min_fine_tune_epochs=1,
            not_for=(("text", "Gradual unfreezing opens a backbone one group of layers at a time, but a text encoder "
                              "is a single layer (a token table or one TF Hub module), so it would be plain fine-tuning: "
                              "choose Fine-tuning instead."),),
        ),
        Strategy(
            id="from_scratch",
            label="From scratch",
            sentence="Train the whole network from random weights, with no pretrained knowledge.",
            use_when="You want a baseline that shows how much transfer learning helps, or your images are very unlike photos.",
            forced_weights="none",
            phases=_from_scratch,
        ),
        Strategy(
            id="domain_weights",
            label="Domain weights",
            sentence="Start from the backbone of a model you trained earlier in this workspace on related images, "
                     "remove its classifier and train a new one (optionally fine-tuning after).",
            use_when="You already trained a model on a related task (the same kind of images), so its backbone "
                     "knows your domain better than ImageNet does.",
            forced_weights="run",
            phases=_domain_weights,
            source="model",
            settings=("source_run", *_TOP),
        ),
        Strategy(
            id="weight_init",
            label="Weight initialisation",
            sentence="Start the whole network from an early checkpoint (after the first epoch) of an earlier run, "
                     "then train everything.",
            use_when="An earlier run on related images had a good start but then over-specialised; its early "
                     "weights are a better starting point than random ones.",
            forced_weights="run",
            phases=_weight_init,
            source="early",
            settings=("source_run",),
        ),
        Strategy(
            id="layer_transfer",
            label="Layer transfer (another architecture)",
            sentence="Build a different backbone and copy into it every layer it shares with an earlier run or another "
                     "backbone (same name, same weight shapes); the other layers and the new head train first, then "
                     "everything at a lower rate.",
            use_when="You trained one network (say ResNet-50 or EfficientNet-B0) and want a bigger one of the same "
                     "family (ResNet-101, EfficientNet-B1) without starting over.",
            forced_weights=None,
            phases=_layer_transfer,
            settings=("source_run", "source_backbone", "fine_tune_epochs", "fine_tune_learning_rate"),
            method="transfer", keeps_backbone=True,
            not_for=(("text", "Layer transfer copies layers between networks of one family (ResNet-50 into "
                              "ResNet-101), and no two text encoders here share a layer; to pass a trained text model's "
                              "knowledge to another encoder, choose Distillation instead."),),
        ),
        Strategy(
            id="distill",
            label="Distillation (teacher to student)",
            sentence="A model you trained earlier (the teacher) teaches a new network of any architecture (the "
                     "student): the student learns from the teacher's softened answers as well as from the labels.",
            use_when="Your accurate model is too big or too slow (for a phone, say) and you want a small one that is "
                     "nearly as good; the teacher must have been trained on the same classes.",
            forced_weights=None,
            phases=_distill,
            settings=("source_run", "temperature", "distill_weight", "compare_student_alone", *_TOP),
            method="distillation", keeps_backbone=True,
            # A student is worth a long schedule (Beyer et al. 2022). Issue 27 measured on 150 flowers per class: 20
            # epochs with every layer open, augmented, no early stopping: the student 4.5 points above its teacher;
            # 2 epochs of the top 20 layers without augmentation: 12 points below (core/bench/distill.py).
            recipe=(("fine_tune_epochs", 20), ("fine_tune_layers", 1000), ("fine_tune_unit", "layers"), ("patience", 0),
                    ("augment", (("flip", True), ("rotate", True), ("zoom", True)))),
        ),
        Strategy(
            id="domain_adversarial",
            label="Domain-adversarial (DANN)",
            sentence="Your labelled images' features are first given the colour (mean and correlations) of unlabelled "
                     "images from where the model will be used; then a small domain classifier tries to tell the two "
                     "apart while a gradient-reversal layer pushes the features to make them indistinguishable.",
            use_when="Your labelled photos come from one setting (a lab, a studio, one camera) and the model will be "
                     "used in another, of which you have unlabelled images (a few hundred is best).",
            forced_weights=None,
            phases=_adapt,
            settings=("target_dataset_id", "adapt_recolor", "adapt_weight", "target_labeled_per_class",
                      "compare_source_only", *_TOP),
            adapts="adversarial",
            method="adaptation",
        ),
        Strategy(
            id="adaptive_layers",
            label="Adaptation layers (DAN / CORAL)",
            sentence="Give the features of your labelled images the mean and correlations of those of unlabelled images "
                     "from where the model will be used (CORAL), then train the classifier on them; or line up an "
                     "adaptation layer with a loss (multi-kernel MMD, or Deep CORAL).",
            use_when="Like domain-adversarial training (labelled images from one setting, unlabelled ones from "
                     "another); it measured as well on the sample's field photos (both re-colour), with nothing to tune.",
            forced_weights=None,
            phases=_adapt,
            settings=("target_dataset_id", "adapt_loss", "adapt_weight", "target_labeled_per_class",
                      "compare_source_only", *_TOP),
            adapts="discrepancy",
            method="adaptation",
        ),
    )
}


def refusal(strategy_id: str, kind: str) -> str | None:
    """Why a strategy does not apply to a kind of data (core.spec.kinds id), in one sentence; None when it does."""
    strategy = STRATEGIES.get(strategy_id)
    return dict(strategy.not_for).get(kind) if strategy else None


def for_kind(kind: str) -> tuple[str, ...]:
    """The strategy ids that apply to a kind of data, in display order."""
    return tuple(s for s in STRATEGIES if refusal(s, kind) is None)


def get(strategy_id: str) -> Strategy:
    """Return the strategy with this id (the id must have been validated)."""
    return STRATEGIES[strategy_id]


def ids() -> tuple[str, ...]:
    """All strategy ids, in display order."""
    return tuple(STRATEGIES)


def uses_feature_cache(config: "RunConfig", phase: Phase) -> bool:
    """True when a phase trains on cached backbone features instead of passing images through it."""
    # The cache key names everything that decides a feature vector, an earlier run's weights file
    # included (core.features.cache_file), so a frozen backbone from any source can use it.
    return phase.base_trainable == "none" and (not config.augment.any() or config.augment_views > 0)


def speed_note(config: "RunConfig") -> str:
    """One sentence on how the frozen phases are trained (cached features or full passes)."""
    phases = [p for p in STRATEGIES[config.strategy].phases(config) if p.epochs > 0]
    frozen = [p for p in phases if p.base_trainable == "none"]
    if not frozen:
        return "The backbone trains too, so every epoch passes each image through the whole network."
    # With later phases that retrain the backbone, say which phase the note is about.
    later = len(frozen) < len(phases)
    first = "While the new classifier trains, the backbone is frozen" if later else "The backbone is frozen"
    tail = (" Later phases retrain part of the backbone, so there every epoch passes each image through the "
            "whole network.") if later else ""
    if not config.augment.any():
        return (f"{first} and there is no augmentation, so each image goes through the backbone "
                "once and the classifier trains on the stored result: much faster." + tail)
    if config.augment_views > 0:
        return (f"{first}: {config.augment_views} augmented copies of each image go through it once "
                "and the classifier trains on the stored results." + tail)
    return (f"{first}, but augmentation makes new copies every epoch, so each epoch passes every "
            "image through the backbone (slower; prepared augmented copies under Customise are faster)." + tail)


# ---------------------------------------------------------------- the picture


def phase_table(config: "RunConfig") -> dict[str, Any]:
    """Which layer groups train in each phase, for the strategy's picture: rows top (the head) to bottom (the stem).

    Each cell is "trainable", "partly" (only some layers of the group) or "frozen"; the groups
    are the backbone's, found from its graph (stored in backbone_facts.json).
    """
    spec = backbones.get(config.backbone)
    groups = spec.groups or [{"name": "backbone", "layers": 1, "params": 0}]
    names = [g["name"] for g in groups]
    sizes = [max(1, g["layers"]) for g in groups]
    phases = [p for p in get(config.strategy).phases(config) if p.epochs > 0]
    rows = ["head"] + names[::-1]
    cells: list[list[str]] = []
    for phase in phases:
        state = _group_states(phase, sizes)
        cells.append(["trainable"] + state[::-1])
    return {
        "rows": rows,
        "phases": [p.name for p in phases],
        "labels": [p.label for p in phases],
        "cells": [[cells[c][r] for c in range(len(phases))] for r in range(len(rows))],  # rows x phases
        "params": [None] + [g["params"] for g in groups][::-1],
    }


def _group_states(phase: Phase, sizes: list[int]) -> list[str]:
    """Per group, bottom first: trainable, partly or frozen in this phase."""
    n = len(sizes)
    if phase.base_trainable == "all":
        return ["trainable"] * n
    if phase.base_trainable == "difference":
        return ["partly"] * n  # shared layers frozen, difference layers open (core.engine.transfer)
    if phase.base_trainable == "groups":
        return ["trainable" if i >= n - phase.top_groups else "frozen" for i in range(n)]
    if phase.base_trainable == "top":
        states, left = [], phase.top_layers
        for size in reversed(sizes):
            states.append("trainable" if left >= size else "partly" if left > 0 else "frozen")
            left -= size
        return states[::-1]
    return ["frozen"] * n


# ---------------------------------------------------------------- the recommender


@dataclass(frozen=True)
class Recommendation:
    """What the recommender proposes, with its reason in one sentence."""

    strategy: str
    backbone: str
    image_size: int
    epochs: int
    fine_tune_epochs: int
    reason: str

    def overrides(self) -> dict[str, Any]:
        """The RunConfig fields this recommendation sets."""
        out = {"strategy": self.strategy, "backbone": self.backbone, "image_size": self.image_size,
               "epochs": self.epochs, "fine_tune_epochs": self.fine_tune_epochs}
        if get(self.strategy).forced_weights is None:
            out["weights"] = "imagenet"
        return out


# The recommender's backbones, smallest first: quick to try on a CPU, good features.
_SMALL, _MEDIUM = ("mobilenet_v2_1.0", 160), ("efficientnet_b0", 224)
RECOMMENDED_BACKBONES = (_SMALL, _MEDIUM)


# Sounds: YAMNet (AudioSet) frozen when its TF Hub folder is here; else an ImageNet CNN on the spectrogram,
# fine-tuned (frozen it is worse than the plain baseline: 66.0 % vs 72.4 % on spoken_words); else the small
# CNN from scratch.
_YAMNET, _SOUND_CNN, _SOUND_IMAGENET = ("yamnet", 96), ("logmel_cnn", 64), ("logmel_mobilenet_v2_0.35", 96)
SOUND_RECOMMENDED = (_SOUND_IMAGENET, _YAMNET)


def recommend_sound(counts: dict[str, int], cached: Iterable[str] = ()) -> Recommendation:
    """Strategy, backbone and epochs for a dataset of sounds, from what is on this computer and its size."""
    ready = set(cached)
    per_class = min([n for n in counts.values() if n > 0] or [0])
    if _YAMNET[0] in ready:
        backbone, strategy, epochs, ft = _YAMNET[0], "feature_extraction", 30, 0
        why = ("YAMNet learned the sounds of two million YouTube clips (AudioSet), so its frozen embeddings with a "
               "new head work well even on few clips")
    elif _SOUND_IMAGENET[0] in ready:
        backbone, strategy, epochs, ft = _SOUND_IMAGENET[0], "fine_tune", 8, 25
        why = ("an ImageNet network looks at the clip's spectrogram as a picture; frozen, its features are worse than "
               "a plain sound baseline, so after the new head the whole network is retrained at a lower rate, which "
               "beats it")
    else:
        backbone, strategy, epochs, ft = _SOUND_CNN[0], "from_scratch", 30, 0
        why = "no pretrained sound or ImageNet weights are on this computer, so a small CNN learns from the clips alone"
    if per_class < 20:
        why += f" (with only {per_class} clips in the smallest class, record more if you can)"
    size = dict((_YAMNET, _SOUND_CNN, _SOUND_IMAGENET))[backbone]
    reason = f"{get(strategy).label} with {backbones.get(backbone).label}: {why}."
    return Recommendation(strategy, backbone, size, epochs, ft, reason)


_TEXT_ENCODER, _TEXT_SCRATCH = "wordllama", "avg_word_embedding"


def recommend_text(counts: dict[str, int], cached: Iterable[str] = ()) -> Recommendation:
    """Strategy, encoder and epochs for a dataset of texts: a head on WordLlama's text vectors where it is
    installed, else Model Maker's average word embedding from scratch."""
    smallest = min([n for n in counts.values() if n > 0] or [0])
    if _TEXT_ENCODER in set(cached):
        backbone, strategy, epochs = _TEXT_ENCODER, "feature_extraction", 80
        why = (f"with {smallest} training texts in the smallest class, a new head on pretrained text vectors "
               "(computed once, so every epoch after the first costs only the head) does far better than learning "
               "words from scratch; with hundreds per class, the 'best' preset also retrains the encoder")
    else:
        backbone, strategy, epochs = _TEXT_SCRATCH, "from_scratch", 40
        why = (f"{backbones.get(_TEXT_ENCODER).label} is not installed on this computer, so word vectors are learnt "
               "from your texts alone; install it (pip install -r requirements.txt) for a pretrained encoder")
    spec = backbones.get(backbone)
    return Recommendation(strategy, backbone, spec.default_size, epochs, 0,
                          f"{get(strategy).label} with {spec.label}: {why}.")


def recommend(counts: dict[str, int], everyday: bool | None, cached: Iterable[str] = ()) -> Recommendation:
    """Strategy, backbone and epochs for a dataset, from its size and balance and whether its images are everyday photos.

    counts: the images per class it will train on (core.data.splits.train_counts: a predefined split's training
    images, not its test ones); the reason says that number.
    everyday: True (photos of everyday things), False (another domain), None (not sure).
    cached: backbone ids whose ImageNet weights are on this computer (preferred when suitable).
    The rule: similar domain -> feature extraction; different -> fine-tune or gradual unfreezing;
    very little data -> freeze more.
    """
    sizes = [n for n in counts.values() if n > 0] or [0]
    per_class, total = min(sizes), sum(sizes)
    uneven = max(sizes) / max(1, min(sizes))
    if per_class < 20:
        strategy, epochs, ft, why = ("feature_extraction", 20, 0,
                                     f"with only {per_class} training images in the smallest class, freezing the whole "
                                     "pretrained backbone and training just a new head is safest")
    elif everyday is False and per_class >= 100:
        strategy, epochs, ft, why = ("gradual_unfreeze", 5, 3,
                                     f"your images are unlike everyday photos and you have {per_class} or more training images "
                                     "per class, "
                                     "so opening the backbone group by group lets it adapt without forgetting")
    elif everyday is False:
        strategy, epochs, ft, why = ("fine_tune", 10, 5,
                                     "your images are unlike everyday photos, so the top of the backbone is retrained "
                                     "after the head, while the lower layers stay frozen because data is limited "
                                     f"({per_class} training images in the smallest class)")
    elif per_class >= 300:
        strategy, epochs, ft, why = ("fine_tune", 10, 5,
                                     f"everyday photos with {per_class} or more training images per class are enough to fine-tune the top "
                                     "of the backbone after training the head")
    else:
        strategy, epochs, ft, why = ("feature_extraction", 15, 0,
                                     "everyday photos are what ImageNet backbones already understand, so a frozen "
                                     f"backbone with a new head works well on your {per_class} or more training images per class"
                                     + ("" if everyday else " (assuming they are everyday photos)"))
    candidates = [_SMALL, _MEDIUM] if total < 2000 else [_MEDIUM, _SMALL]
    ready = set(cached)
    backbone, size = next((c for c in candidates if c[0] in ready), candidates[0])
    extra = f"; the classes are uneven ({uneven:.0f}x), so rarer classes count more" if uneven > 1.5 else ""
    download = ""
    if backbone not in ready:
        better = backbones.get(backbone)
        fallback = _ready_fallback(ready)
        if fallback is not None:
            # Offline-safe: train what is on this computer now; name what a download would add.
            backbone, size = fallback.id, min(max(_SMALL[1], fallback.min_size), fallback.max_size)
            download = (f"; its weights are on this computer, while {better.label} would likely be more accurate "
                        f"but needs its weights (about {better.size_mb:g} MB) downloaded first")
        else:
            download = (f"; its ImageNet weights (about {better.size_mb:g} MB) are not on this computer yet and are "
                        "downloaded when training starts")
    reason = f"{get(strategy).label} with {backbones.get(backbone).label}: {why}{extra}{download}."
    return Recommendation(strategy, backbone, size, epochs, ft, reason)


def _ready_fallback(ready: set[str]) -> backbones.BackboneSpec | None:
    """Among backbones whose ImageNet weights are on this computer: the most accurate one that is no
    slower than the recommender's medium choice, else the fastest; None when none is ready."""
    specs = [backbones.BACKBONES[b] for b in sorted(ready)
             if b in backbones.BACKBONES and "imagenet" in backbones.BACKBONES[b].weights_options
             and backbones.BACKBONES[b].kind == "image"]
    if not specs:
        return None
    limit = backbones.get(_MEDIUM[0]).gflops
    light = [s for s in specs if s.gflops <= limit]
    if light:
        return max(light, key=lambda s: s.top1 or 0.0)
    return min(specs, key=lambda s: s.gflops)


# ---------------------------------------------------------------- class weights

# "auto" turns class weights on when the largest class has more than this many times the
# images of the smallest.
IMBALANCE_AUTO = 1.5


def class_weights(setting: str, labels: Any) -> dict[int, float] | None:
    """Keras class_weight for the training labels: "balanced" weights, none, or "auto" (balanced when uneven)."""
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    present, counts = np.unique(labels, return_counts=True)
    if setting == "none" or len(present) == 0 or (setting == "auto" and counts.max() / counts.min() <= IMBALANCE_AUTO):
        return None
    return dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=labels).tolist()))


def recommend_for(kind: str, counts: dict[str, int], everyday: bool | None = None,
                  cached: Iterable[str] = ()) -> Recommendation:
    """The recommender of a kind of data (images ask about everyday photos; sounds and texts have their own), as
    the `recommend` command and the Model page both ask it."""
    if kind == "audio":
        return recommend_sound(counts, cached)
    if kind == "text":
        return recommend_text(counts, cached)
    return recommend(counts, everyday, cached)

