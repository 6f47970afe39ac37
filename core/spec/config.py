"""RunConfig: the one frozen, validated description of a training run.

Widgets read their options and bounds from CHOICES and RANGES, the same declarations validate()
checks, so the page can never offer a value the trainer refuses.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from core.errors import ConfigError
from core.spec import backbones, kinds, strategies


@dataclass(frozen=True)
class HeadConfig:
    """The new classifier put on top of the backbone."""

    pooling: str = "avg"
    dropout: float = 0.2
    hidden_units: int = 0  # 0: no hidden layer, straight to the class scores
    l2: float = 0.0


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes applied to training images only, each epoch anew."""

    flip: bool = True
    rotate: bool = True
    zoom: bool = False
    contrast: bool = False
    brightness: bool = False
    translate: bool = False
    # Sounds (core.engine.sounds): background noise mixed in, loudness changed, shifted in time, and
    # SpecAugment's time and frequency masks. Images ignore them, and sounds ignore the ones above.
    noise: bool = False
    gain: bool = False
    shift: bool = False
    spec_mask: bool = False

    def any(self) -> bool:
        """True when at least one augmentation is switched on."""
        return any(asdict(self).values())


# The kind of data each augmentation changes: the Model page offers a dataset's own (texts have none).
def augment_kinds() -> dict[str, str]:
    """Which kind of data each augmentation changes, as the registered kinds declare it (Kind.augments)."""
    return {name: kind.id for kind in kinds.KINDS.values() for name in kind.augments}


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce a training run."""

    dataset_id: str
    backbone: str = "mobilenet_v2_0.35"
    weights: str = "imagenet"
    strategy: str = "feature_extraction"
    image_size: int = 128
    head: HeadConfig = field(default_factory=HeadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # The first phase (the head, or the whole network from scratch).
    epochs: int = 10
    learning_rate: float = 1e-3
    # The fine-tuning phase, used by strategies that unfreeze part of the backbone.
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-4
    fine_tune_layers: int = 20
    batch_size: int = 32
    optimizer: str = "adam"
    patience: int = 3  # early stopping on validation loss; 0 switches it off
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # With a frozen backbone and augmentation: how many augmented views of each training image
    # to compute once and cache (0: run the backbone on fresh augmentations every epoch).
    augment_views: int = 0
    # Also train the same network from scratch with the same budget, to show whether transfer helped.
    compare_scratch: bool = False
    preset: str = ""  # the preset this config started from, for display only
    # The earlier run of this workspace that domain_weights and weight_init start from.
    source_run: str = ""
    # Fine-tuning unfreezes the top fine_tune_layers "layers" (those with weights), or that many "groups".
    fine_tune_unit: str = "layers"
    schedule: str = "constant"  # the learning rate within a phase: constant, cosine decay (after a warm-up), plateau
    label_smoothing: float = 0.0
    class_weights: str = "auto"  # "auto": balanced class weights when the classes are uneven
    mixed_precision: bool = False  # float16 compute on a GPU; ignored (with a notice) without one
    # layer_transfer may start from a plain registry backbone (its ImageNet or random weights) instead of a run.
    source_backbone: str = ""
    # distill: the teacher's probabilities are softened at this temperature, and mixed with the true
    # labels as distill_weight * KL * T^2 + (1 - distill_weight) * cross-entropy (Hinton et al. 2015).
    temperature: float = 4.0
    distill_weight: float = 0.7
    # distill: also train the same student without the teacher, with the same budget.
    compare_student_alone: bool = False
    # Domain adaptation: a second dataset, images from where the model will be used. Its images
    # train without labels; its labels (class names shared with the source) only measure accuracy
    # on a held-out part of it, unless target_labeled_per_class > 0 also trains on that many of them.
    target_dataset_id: str = ""
    target_labeled_per_class: int = 0
    adapt_weight: float = 1.0  # how much lining up the two domains counts against the label loss
    # adaptive_layers: "recolor" (CORAL on the backbone's features: source features re-coloured like the target's;
    # adapt_weight up to 1 is the share of the way), or a loss: multi-kernel MMD (DAN) or CORAL (Deep CORAL).
    adapt_loss: str = "recolor"
    # domain_adversarial: re-colour the source's features like the target's (CORAL on features, in full) before the
    # domain classifier trains; measured +11 points on bench domain's target with it, +4 without (issue 27).
    adapt_recolor: bool = True
    # Also train the source-only baseline (the same head, no adaptation) to show whether adaptation helped.
    compare_source_only: bool = False

    def validate(self) -> "RunConfig":
        """Raise ConfigError naming the allowed values if anything is out of bounds; return self."""
        if not isinstance(self.dataset_id, str) or not self.dataset_id:
            raise ConfigError("The config has no dataset: import or choose a dataset first.")
        backbones.check_id(self.backbone)
        _check_choice("strategy", self.strategy, strategies.ids())
        spec = backbones.get(self.backbone)
        strategy = strategies.get(self.strategy)
        why_not = strategies.refusal(self.strategy, spec.kind)
        if why_not:
            raise ConfigError(why_not)
        forced = strategy.forced_weights
        if forced != "run":  # "run": an earlier run's weights, whatever the backbone offers
            _check_choice("weights", self.weights, spec.weights_options)
        if forced is not None and self.weights != forced:
            raise ConfigError(
                f"The {self.strategy} strategy trains from weights '{forced}', "
                f"but the config asks for '{self.weights}'; set weights to '{forced}'."
            )
        _check_transfer(self)
        if strategy.source and not self.source_run:
            raise ConfigError(f"The {self.strategy} strategy starts from an earlier run; choose one (source_run).")
        if self.source_run and not re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{12}", self.source_run):
            raise ConfigError(f"'{self.source_run}' is not a run id (like 20260101-120000-0123456789ab); "
                              "list runs with 'python -m core runs'.")
        for name, allowed in CHOICES.items():
            _check_choice(name, _lookup(self, name), allowed)
        for name, (low, high) in RANGES.items():
            _check_range(name, _lookup(self, name), low, high)
        _check_range("image_size", self.image_size, spec.min_size, spec.max_size, f"for {self.backbone}")
        if self.val_fraction + self.test_fraction > 0.6:
            raise ConfigError(
                "Validation and test fractions together must leave at least 40% of the images "
                f"for training; they add up to {self.val_fraction + self.test_fraction:.0%}."
            )
        _check_target(self, strategy)
        if self.fine_tune_epochs < strategy.min_fine_tune_epochs:
            raise ConfigError(f"{strategy.label} needs fine_tune_epochs of at least {strategy.min_fine_tune_epochs}.")
        return self

    def to_json(self) -> str:
        """Serialize exactly; from_json(to_json()) == self."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        """Parse and validate a config written by to_json (unknown keys are refused)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The config is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
        return cls.from_dict(data).validate()

    @classmethod
    def from_dict(cls, data: Any) -> "RunConfig":
        """Build a config from plain data, refusing unknown or mistyped fields."""
        if not isinstance(data, dict):
            raise ConfigError("The config must be a JSON object.")
        nested = {"head": HeadConfig, "augment": AugmentConfig}
        kwargs = _typed_kwargs(cls, data, "")
        for key, sub_cls in nested.items():
            if key in kwargs:
                if not isinstance(kwargs[key], dict):
                    raise ConfigError(f"The config field '{key}' must be an object.")
                kwargs[key] = sub_cls(**_typed_kwargs(sub_cls, kwargs[key], key + "."))
        if "dataset_id" not in kwargs:
            raise ConfigError("The config has no dataset_id.")
        return cls(**kwargs)

    def with_changes(self, **changes: Any) -> "RunConfig":
        """A copy with top-level fields replaced (validate() it before use)."""
        return replace(self, **changes)


# Declared constraints shared by validate() and the widgets.
CHOICES: dict[str, tuple[str, ...]] = {
    # maxpool_flatten: 2x2 max pooling, then flatten (keeps a coarse layout of the feature map).
    "head.pooling": ("avg", "max", "maxpool_flatten", "flatten"),
    "optimizer": ("adam", "adamw", "sgd", "rmsprop"),
    "schedule": ("constant", "cosine", "warmup_cosine", "plateau"),
    "class_weights": ("auto", "balanced", "none"),
    "fine_tune_unit": ("layers", "groups"),
    "adapt_loss": ("recolor", "mmd", "coral"),
}
RANGES: dict[str, tuple[float, float]] = {
    "image_size": (32, 600),
    "epochs": (1, 500),
    "learning_rate": (1e-6, 1.0),
    "fine_tune_epochs": (0, 500),
    "fine_tune_learning_rate": (1e-7, 1.0),
    "fine_tune_layers": (1, 1000),
    "batch_size": (1, 512),
    "patience": (0, 100),
    "seed": (0, 2**31 - 1),
    "val_fraction": (0.05, 0.4),
    "test_fraction": (0.05, 0.4),
    "head.dropout": (0.0, 0.9),
    "head.hidden_units": (0, 4096),
    "head.l2": (0.0, 0.1),
    "augment_views": (0, 20),
    "label_smoothing": (0.0, 0.5),
    "temperature": (1.0, 20.0),
    "distill_weight": (0.0, 1.0),
    "target_labeled_per_class": (0, 1000),
    "adapt_weight": (0.0, 1000.0),  # CORAL's distance is divided by 4 d^2, so it needs large weights
}

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds to a first model on a laptop CPU: the smallest good backbone, frozen.
    "quick": {
        "backbone": "mobilenet_v2_0.35",
        "image_size": 128,
        "strategy": "feature_extraction",
        "epochs": 10,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "patience": 3,
        "augment": {"flip": True, "rotate": True},
    },
    # A full-width MobileNetV2: the usual transfer-learning baseline (Keras tutorial, Model Maker).
    "balanced": {
        "backbone": "mobilenet_v2_1.0",
        "image_size": 160,
        "strategy": "feature_extraction",
        "epochs": 15,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "patience": 4,
        "augment": {"flip": True, "rotate": True, "zoom": True},
    },
    # The most accurate registry backbone at its native size, then fine-tuned.
    "best": {
        "backbone": "efficientnet_b0",
        "image_size": 224,
        "strategy": "fine_tune",
        "epochs": 15,
        "learning_rate": 1e-3,
        "fine_tune_epochs": 10,
        "fine_tune_learning_rate": 1e-5,
        "fine_tune_layers": 40,
        "batch_size": 32,
        "patience": 5,
        "head": {"dropout": 0.3},
        "augment": {"flip": True, "rotate": True, "zoom": True, "contrast": True},
    },
}


# Sounds (kind "audio"): frozen ImageNet features of a spectrogram are worse than a plain baseline, fine-tuned
# they are better (measured with `python -m core bench audio`), so no preset freezes an ImageNet CNN on sound.
_SOUND_AUGMENT = {"flip": False, "rotate": False, "noise": True, "gain": True, "shift": True, "spec_mask": True}
KIND_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "audio": {
        # The small CNN from scratch: no weights needed, a minute or two on a CPU.
        "quick": {
            "backbone": "logmel_cnn", "weights": "none", "image_size": 64, "strategy": "from_scratch",
            "epochs": 30, "learning_rate": 1e-3, "batch_size": 32, "patience": 8, "augment": _SOUND_AUGMENT,
        },
        # MobileNet V2 0.35 on the spectrogram: the head first, then the whole network at a lower rate
        # (measured on spoken_words: 87.5 % against the baseline's 73.8 %, without augmentation).
        "balanced": {
            "backbone": "logmel_mobilenet_v2_0.35", "image_size": 96, "strategy": "fine_tune", "epochs": 8,
            "learning_rate": 1e-3, "fine_tune_epochs": 25, "fine_tune_learning_rate": 5e-4,
            "fine_tune_layers": 300, "batch_size": 32, "patience": 6,
            "augment": {**_SOUND_AUGMENT, "noise": False, "gain": False, "shift": False, "spec_mask": False},
        },
        "best": {
            "backbone": "logmel_mobilenet_v2_0.35", "image_size": 128, "strategy": "fine_tune", "epochs": 8,
            "learning_rate": 1e-3, "fine_tune_epochs": 30, "fine_tune_learning_rate": 5e-4,
            "fine_tune_layers": 300, "batch_size": 32, "patience": 8, "augment": _SOUND_AUGMENT,
        },
    },
}
# Texts (kind "text"): a head on WordLlama's cached text vectors trains in seconds and beats TF-IDF with few
# texts per class (`python -m core bench text`); "best" then opens its token table.
_TEXT_HEAD = {"backbone": "wordllama", "image_size": 128, "learning_rate": 3e-3, "batch_size": 16, "head": {"dropout": 0.2},
              "augment": {"flip": False, "rotate": False}}
KIND_PRESETS["text"] = {
    "quick": {**_TEXT_HEAD, "strategy": "feature_extraction", "epochs": 40, "patience": 8},
    "balanced": {**_TEXT_HEAD, "strategy": "feature_extraction", "epochs": 80, "patience": 15},
    "best": {**_TEXT_HEAD, "strategy": "fine_tune", "epochs": 60, "patience": 15, "fine_tune_epochs": 10,
             "fine_tune_learning_rate": 1e-3},
}
# The fourth preset: the recommender's proposal for the dataset on top of a kind's base preset (images: quick;
# sounds: balanced, since a sound backbone must be fine-tuned to beat the baseline).
RECOMMENDED = "recommended"
PRESET_CHOICES = (*PRESETS, RECOMMENDED)
_RECOMMENDED_BASE = {"image": "quick"}


def presets(kind: str = "image") -> dict[str, dict[str, Any]]:
    """The presets of a kind of data (core.spec.kinds): images have PRESETS, other kinds their own."""
    return KIND_PRESETS.get(kind, PRESETS)


def preset_values(name: str, recommendation: dict[str, Any] | None = None, kind: str = "image") -> dict[str, Any]:
    """The settings a preset starts from; 'recommended' needs the recommender's proposal (Recommendation.overrides())."""
    table = presets(kind)
    if name == RECOMMENDED:
        if recommendation is None:
            raise ConfigError("The recommended preset needs a recommendation for the dataset; ask 'python -m core "
                              "recommend' or choose quick, balanced or best.")
        return {**table[_RECOMMENDED_BASE.get(kind, "balanced")], **recommendation}
    _check_choice("preset", name, tuple(table))
    return dict(table[name])


def preset(name: str, dataset_id: str, recommendation: dict[str, Any] | None = None, kind: str = "image",
           **overrides: Any) -> RunConfig:
    """The named preset of a kind of data for a dataset, with top-level fields overridden, validated."""
    data = {**preset_values(name, recommendation, kind), "dataset_id": dataset_id, "preset": name}
    data.update(overrides)
    return RunConfig.from_dict(data).validate()


# ---------------------------------------------------------------- what a choice implies for the settings left out
# The rules the `config` command applies (settle) and the Model page asks one by one, so they cannot drift.


def clamp_image_size(size: int, spec: backbones.BackboneSpec) -> int:
    """The image size nearest to `size` that the backbone's weights allow."""
    return min(max(size, spec.min_size), spec.max_size)


def only_weights(strategy: strategies.Strategy | None, spec: backbones.BackboneSpec | None) -> str | None:
    """The starting weights when there is no choice: the strategy's forced weights, else the backbone's only
    option; None when the person chooses."""
    if strategy is not None and strategy.forced_weights:
        return strategy.forced_weights
    if spec is not None and len(spec.weights_options) == 1:
        return spec.weights_options[0]
    return None


def least_fine_tune_epochs(strategy: strategies.Strategy, start: dict[str, Any]) -> int:
    """The fine-tuning epochs a strategy that needs some starts with: the preset's (else 3), at least its minimum."""
    return max(strategy.min_fine_tune_epochs, start.get("fine_tune_epochs", 3))


# Training from random weights: no early stopping (a network learning from nothing often plateaus before it improves),
# batches of at most 16 (more updates per epoch) and at least SCRATCH_MIN_EPOCHS epochs, or the least its
# backbone's scratch_recipe measured.
SCRATCH_MIN_EPOCHS = 30
SCRATCH_MAX_BATCH = 16


def scratch_settings(spec: backbones.BackboneSpec, epochs: int, batch_size: int) -> dict[str, Any]:
    """The settings that train `spec` from random weights (its default image size and its measured recipe), for a
    config that had these epochs and batch size: the offline fallback and a from-scratch backbone chosen by hand."""
    recipe = spec.scratch_recipe
    return {"image_size": spec.default_size, "batch_size": min(batch_size, SCRATCH_MAX_BATCH), "patience": 0, **recipe,
            "epochs": max(epochs, recipe.get("epochs", SCRATCH_MIN_EPOCHS))}


def strategy_settings(strategy: strategies.Strategy, augment: dict[str, bool], kind: str = "image") -> dict[str, Any]:
    """The settings a strategy measured best with (Strategy.recipe), for a config whose augmentations are `augment`:
    its augmentations of this kind of data join those. Distillation: 20 fine-tuning epochs with every layer open,
    augmented, no early stopping. The `config` command (settle) and the Model page apply them where the person has
    not set them."""
    out = dict(strategy.recipe)
    if "augment" in out:
        extra = {k: v for k, v in dict(out["augment"]).items() if augment_kinds().get(k) == kind}
        out["augment"] = {**augment, **extra}
    return out


def settle(name: str, dataset_id: str, given: dict[str, Any], recommendation: dict[str, Any] | None = None,
           kind: str = "image") -> RunConfig:
    """A preset with the settings a person gave ({field: value}, dotted for the head's), and what their choices imply
    for those they left out: a chosen backbone keeps the preset's image size where its weights allow it and its only
    weights; a chosen strategy its forced weights, enough fine-tuning epochs and its measured recipe
    (strategy_settings); head settings join the preset's."""
    start = preset_values(name, recommendation, kind)
    top = {k: v for k, v in given.items() if not k.startswith("head.")}
    head = {k.removeprefix("head."): v for k, v in given.items() if k.startswith("head.")}
    strategy = strategies.STRATEGIES.get(given.get("strategy") or "")
    chosen = given.get("backbone")
    spec = backbones.get(chosen) if chosen in backbones.BACKBONES or backbones.is_hub(chosen or "") else None
    if spec is not None and "image_size" not in given:
        top["image_size"] = clamp_image_size(start["image_size"], spec)
    if "weights" not in given and only_weights(strategy, spec):
        top["weights"] = only_weights(strategy, spec)
    elif ("weights" not in given and spec is not None and chosen != start["backbone"] and start.get("weights") == "none"
          and "imagenet" in spec.weights_options):
        top["weights"] = "imagenet"  # another backbone than a preset's from-scratch one (sounds' quick): pretrained
    if spec is not None and spec.scratch_recipe and chosen != start["backbone"]:  # its from-scratch recipe
        recipe = scratch_settings(spec, start["epochs"], start["batch_size"])
        top.update({k: v for k, v in recipe.items() if k not in given})
    if strategy and strategy.recipe:
        recipe = strategy_settings(strategy, start.get("augment", {}), kind)
        top.update({k: v for k, v in recipe.items() if k not in given})
    if strategy and strategy.min_fine_tune_epochs and "fine_tune_epochs" not in given:
        top["fine_tune_epochs"] = least_fine_tune_epochs(strategy, start)
    if head:
        top["head"] = {**start.get("head", {}), **head}
    return preset(name, dataset_id, recommendation, kind, **top)


def offline_kit() -> list[tuple[str, int]]:
    """(backbone, image size) whose weights the presets and the recommender use: what to fetch before going offline."""
    kit = ([(p["backbone"], p["image_size"]) for table in (PRESETS, *KIND_PRESETS.values()) for p in table.values()]
           + list(strategies.RECOMMENDED_BACKBONES) + list(strategies.SOUND_RECOMMENDED))
    kit = [(b, size) for b, size in kit if "imagenet" in backbones.get(b).weights_options]
    return list(dict.fromkeys(kit))


def _typed_kwargs(cls: type, data: dict, prefix: str) -> dict[str, Any]:
    """Check keys and value types against the dataclass fields (JSON has no tuples or ints vs floats)."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"Unknown config field '{prefix}{unknown[0]}'; allowed fields: {', '.join(prefix + k for k in known)}."
        )
    out = {}
    for key, value in data.items():
        expected = known[key].type
        if expected in ("int", int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"The config field '{prefix}{key}' must be a whole number, not {value!r}.")
        if expected in ("float", float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"The config field '{prefix}{key}' must be a number, not {value!r}.")
            value = float(value)
        if expected in ("bool", bool) and not isinstance(value, bool):
            raise ConfigError(f"The config field '{prefix}{key}' must be true or false, not {value!r}.")
        if expected in ("str", str) and not isinstance(value, str):
            raise ConfigError(f"The config field '{prefix}{key}' must be text, not {value!r}.")
        out[key] = value
    return out


def _check_transfer(config: RunConfig) -> None:
    """layer_transfer needs one source (a run or a backbone); distill needs a teacher run."""
    if config.strategy == "layer_transfer":
        if bool(config.source_run) == bool(config.source_backbone):
            raise ConfigError("The layer_transfer strategy copies layers from one source: choose either an earlier run "
                              "(source_run) or a backbone (source_backbone), not both and not neither.")
        if config.source_backbone:
            backbones.check_id(config.source_backbone)
    elif config.source_backbone:
        raise ConfigError("source_backbone is used only by the layer_transfer strategy; clear it or choose layer_transfer.")
    if config.strategy == "distill" and not config.source_run:
        raise ConfigError("The distill strategy learns from a teacher: choose a finished run of this workspace "
                          "(source_run) whose classes are this dataset's.")
    if config.compare_student_alone and config.strategy != "distill":
        raise ConfigError("compare_student_alone is for the distill strategy; clear it or choose distill.")


def _check_target(config: RunConfig, strategy: strategies.Strategy) -> None:
    """The domain-adaptation fields: sentences for a missing or repeated target dataset."""
    if strategy.adapts and not config.target_dataset_id:
        raise ConfigError(f"The {config.strategy} strategy adapts to a target dataset (images from where the model "
                          "will be used); choose one (target_dataset_id, or --target-dataset).")
    if config.target_dataset_id and config.target_dataset_id == config.dataset_id:
        raise ConfigError("The target dataset is the training dataset itself; choose images from where the model "
                          "will be used (another dataset), or no target.")
    if config.compare_source_only and not strategy.adapts:
        raise ConfigError("compare_source_only compares an adapted run with its source-only baseline; choose the "
                          "domain_adversarial or adaptive_layers strategy with a target dataset.")
    if config.target_labeled_per_class and not config.target_dataset_id:
        raise ConfigError("target_labeled_per_class trains on labelled images of a target dataset; choose one "
                          "(target_dataset_id) or set it to 0.")


def _lookup(config: RunConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"'{value}' is not a valid {name}; allowed values: {', '.join(allowed)}.")


def _check_range(name: str, value: float, low: float, high: float, context: str = "") -> None:
    if not low <= value <= high:
        where = f" {context}" if context else ""
        raise ConfigError(f"{name} must be between {low:g} and {high:g}{where}, not {value:g}.")
