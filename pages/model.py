"""Model: a preset, a backbone, a transfer strategy and the training settings, built into one RunConfig.

Every option and bound comes from core (BACKBONES, STRATEGIES, CHOICES, RANGES, PRESETS), the same
declarations RunConfig.validate() checks, so the page never offers a value the trainer refuses.
TensorFlow is imported only when the user asks for the parameter count or the pretrained model's
guesses, never to draw the page.
"""

from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import settings
from core.data import splits
from core.engine import modeling
from core.errors import ConfigError, TransferLabError
from core.ship import codegen
from core.spec import backbones, fields, kinds, strategies
from core.spec.config import (CHOICES, PRESET_CHOICES, PRESETS, RANGES, RECOMMENDED, AugmentConfig, RunConfig,
                              augment_kinds, clamp_image_size, least_fine_tune_epochs, only_weights, preset,
                              preset_values, presets, scratch_settings, strategy_settings)
from core.store import datasets, drafts, sources
from pages import _charts as charts
from pages import _common, _domain, _kinds, _offline, _transfer, _weights

K = "model."  # prefix of this page's widget keys: K + a RunConfig field ("head.dropout" for nested ones)
UI = "model_ui."  # prefix of widgets that steer the page but are not RunConfig fields

# Top-level RunConfig fields that have a widget; head and augment fields are added below.
FORM_FIELDS = (
    "backbone", "weights", "strategy", "image_size", "epochs", "learning_rate", "batch_size",
    "fine_tune_epochs", "fine_tune_learning_rate", "fine_tune_layers", "fine_tune_unit", "source_run",
    "optimizer", "schedule", "patience", "label_smoothing", "class_weights", "mixed_precision",
    "val_fraction", "test_fraction", "seed", "augment_views", "compare_scratch",
)
HEAD_FIELDS = ("pooling", "dropout", "hidden_units", "l2")

# The preset radio also offers the recommender's choice (config.RECOMMENDED); a config records its preset.
PRESET_NAMES = {"quick": "Quick", "balanced": "Balanced", "best": "Best", RECOMMENDED: "Recommended for my images"}
DRAFT = _common.MODEL_DRAFT  # the workspace draft that keeps these settings across a browser reload
PRESET_LEADS = {
    "quick": "Fastest: a first model within minutes on an ordinary laptop.",
    "balanced": "The usual starting point: a bigger backbone at a larger image size.",
    "best": "Most accurate and slowest: the strongest backbone, then fine-tuned.",
}
WEIGHT_WORDS = {"imagenet": "Pretrained on ImageNet", "none": "Random (no pretraining)", "run": "From an earlier run"}
POOLING_WORDS = {"avg": "average (usual)", "max": "maximum", "maxpool_flatten": "2x2 max pool, then flatten",
                 "flatten": "flatten (keep every position)"}
OPTIMIZER_WORDS = {"adam": "Adam", "adamw": "AdamW (Adam with weight decay)", "sgd": "SGD with momentum",
                   "rmsprop": "RMSprop"}
SCHEDULE_WORDS = {"constant": "constant", "cosine": "cosine decay within each phase",
                  "warmup_cosine": "warm up, then cosine decay",
                  "plateau": "lower it when validation loss stalls"}
CLASS_WEIGHT_WORDS = {"auto": "automatic (on when classes are uneven)", "balanced": "always balance", "none": "off"}
EVERYDAY = {"yes": "Yes, everyday photos", "no": "No, another kind of image", "unsure": "Not sure"}
LEARNING_RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
BATCH_SIZES = (4, 8, 16, 32, 64, 128)
L2_VALUES = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
IMAGE_STEP = 16


# ---------------------------------------------------------------- form state <-> RunConfig


def form_values(config: RunConfig) -> dict[str, Any]:
    """Widget key -> value for every widget of this page, read from a config."""
    values = {K + name: getattr(config, name) for name in FORM_FIELDS}
    values |= {K + "head." + name: getattr(config.head, name) for name in HEAD_FIELDS}
    values |= {K + "augment." + f.name: getattr(config.augment, f.name) for f in dataclass_fields(AugmentConfig)}
    values[K + "preset"] = config.preset if config.preset in PRESET_CHOICES else "quick"
    if backbones.is_hub(config.backbone):
        # The registry selectbox keeps a registry id; the TF Hub handle has widgets of its own.
        values[K + "backbone"] = PRESETS["quick"]["backbone"]
        values[UI + "source"] = "hub"
        handle = backbones.get(config.backbone).hub_handle
        values[UI + "hub_handle"] = handle
        values[UI + "hub_choice"] = handle if any(m.handle == handle for m in backbones.HUB_MODELS) else "other"
    return values


def load_form(config: RunConfig) -> None:
    """Put a config's values into the widgets (before they are drawn)."""
    st.session_state.update(form_values(config))


def ensure_form(dataset_id: str, ws: Path) -> None:
    """Fill widgets that have no value yet: from the config built last time in this browser session, else
    from the workspace's draft (a reload), else the quick preset."""
    draft = drafts.load(ws, DRAFT) or {}
    text = st.session_state.get("run_config") or draft.get("config")
    try:
        start = RunConfig.from_json(text) if text else _preset("quick", dataset_id)
        if start.dataset_id != dataset_id:
            start = _preset("quick", dataset_id)
    except TransferLabError:
        start = _preset("quick", dataset_id)
    for key, value in form_values(start).items():
        st.session_state.setdefault(key, value)
    for key, value in (draft.get("ui") or {}).items():
        if key in DRAFT_UI:
            st.session_state.setdefault(UI + key, value)
    st.session_state.setdefault(UI + "source", "keras")
    st.session_state.setdefault(UI + "hub_handle", backbones.HUB_MODELS[0].handle)


# Page-only widgets kept in the draft with the config.
DRAFT_UI = ("everyday", "tier")


def save_draft(ws: Path, config: RunConfig) -> None:
    """Keep the settings in the workspace, so a browser reload (even mid-training) brings them back."""
    ui = {key: st.session_state[UI + key] for key in DRAFT_UI if UI + key in st.session_state}
    drafts.save(ws, DRAFT, {"config": config.to_json(), "ui": ui})


def preset_config(name: str, dataset_id: str, **overrides: Any) -> RunConfig:
    """A preset's config; 'recommended' takes the recommender's proposal that recommendation() keeps."""
    return _preset(name, dataset_id, _proposal(name), **overrides)


def _kind() -> str:
    """The kind of data of the dataset in hand (the page keeps it before drawing anything)."""
    return st.session_state.get(UI + "kind", kinds.DEFAULT)


def _preset(name: str, dataset_id: str, rec: dict[str, Any] | None = None, **overrides: Any) -> RunConfig:
    """A preset of the dataset's kind of data (texts and sounds have their own backbones and settings)."""
    return preset(name, dataset_id, rec, kind=_kind(), **overrides)


def _proposal(name: str) -> dict[str, Any] | None:
    """The recommender's proposal for the 'recommended' preset (None for the others)."""
    return (st.session_state.get(UI + "rec") or {}) if name == RECOMMENDED else None


def apply_preset(dataset_id: str) -> None:
    """Callback of the preset radio: reset every setting to the chosen preset."""
    load_form(preset_config(st.session_state[K + "preset"], dataset_id))
    st.session_state[UI + "source"] = "keras"


def apply_recommendation(dataset_id: str) -> None:
    """Callback of the recommender's button: the preset radio moves to 'Recommended' and the settings follow."""
    st.session_state[K + "preset"] = RECOMMENDED
    apply_preset(dataset_id)


def keep_in(key: str, allowed: tuple, fallback: Any) -> None:
    """Replace a widget value that the current backbone or strategy no longer allows."""
    if st.session_state.get(key) not in allowed:
        st.session_state[key] = fallback


def with_current(options: tuple, key: str) -> tuple:
    """Options plus the widget's current value (a loaded config may hold one off the usual grid)."""
    return tuple(sorted(set(options) | {st.session_state[key]}))


def in_range(options: tuple, name: str) -> tuple:
    low, high = RANGES[name]
    return tuple(v for v in options if low <= v <= high)


def weights_where(spec: backbones.BackboneSpec, size: int) -> str:
    """Whether a backbone's pretrained weights are on this computer, in words."""
    if "imagenet" not in spec.weights_options:
        return "no pretraining"
    return "on this computer" if backbones.cached_weights(spec, size, _common.workspace()) else "downloaded when needed"


# ---------------------------------------------------------------- widgets


def recommendation(info: dict[str, Any]) -> strategies.Recommendation:
    """The recommender's choice for this dataset and the answer about everyday photos (kept for the preset radio)."""
    answer = st.session_state.get(UI + "everyday", tuple(EVERYDAY)[0])
    kind = _kind()
    rec = strategies.recommend_for(kind, splits.train_counts(info), {"yes": True, "no": False}.get(answer),
                                   backbones.cached_ids(kind))  # the same recommender as the `recommend` command
    st.session_state[UI + "rec"] = rec.overrides()
    return rec


def preset_ui(dataset_id: str, rec: strategies.Recommendation) -> str:
    def caption(name: str) -> str:
        if name == RECOMMENDED:
            return (f"Chosen for your {kinds.get(_kind()).items}: {_common.mid_sentence(strategies.get(rec.strategy).label)} with "
                    f"{backbones.get(rec.backbone).label}, {rec.image_size} px (see why below).")
        p = presets(_kind())[name]
        spec, strategy = backbones.get(p["backbone"]), strategies.get(p["strategy"])
        return f"{PRESET_LEADS.get(name, '')} {spec.label}, {p['image_size']} px, {_common.mid_sentence(strategy.label)}."

    return st.radio(
        "Start from a preset", PRESET_CHOICES, key=K + "preset", persist_state="session",
        format_func=PRESET_NAMES.get, captions=[caption(name) for name in PRESET_CHOICES], horizontal=True,
        on_change=apply_preset, args=(dataset_id,),
        help="Choosing a preset resets all the settings under Customise to it; you can then change any of them.",
    )


def recommender_ui(dataset_id: str, rec: strategies.Recommendation) -> None:
    """A question about the images, the recommendation with its reason, and a button to use it."""
    with st.container(border=True):
        if _kind() == kinds.DEFAULT:  # the question only images are asked
            st.radio("Are your images everyday photos (people, animals, objects, scenes)?", tuple(EVERYDAY),
                     key=UI + "everyday", format_func=EVERYDAY.get, horizontal=True,
                     help="Pretrained backbones learned from millions of everyday photos. Microscopy, X-rays, "
                          "drawings, satellite or factory images are a different kind.")
        st.markdown(f"**Recommendation:** {rec.reason}")
        st.caption(f"{rec.epochs} epochs for the head"
                   + (f", then {rec.fine_tune_epochs} per later phase" if rec.fine_tune_epochs else "")
                   + f", at {rec.image_size} px.")
        using = st.session_state.get(K + "preset") == RECOMMENDED
        st.button("Use this recommendation again" if using else "Use this recommendation",
                  key=UI + "use_recommendation", on_click=apply_recommendation, args=(dataset_id,),
                  icon=":material/auto_fix_high:",
                  help="Chooses the 'Recommended for my images' preset: the recommended backbone, strategy and "
                       "settings go into the settings under Customise; you can still change any of them.")


def ops_at(spec: backbones.BackboneSpec, size: int) -> float:
    """Billions of operations per image at this image size (the registry's figure is at the pretrained size)."""
    return spec.gflops * (size / spec.default_size) ** 2


def ms_at(spec: backbones.BackboneSpec, size: int) -> float:
    """Estimated milliseconds per image on a 2-core CPU at this image size."""
    return spec.ms_per_image * (size / spec.default_size) ** 2


def backbone_table_ui(size: int, kind: str) -> str:
    """The zoo as a sortable table, filtered by speed or accuracy; returns the chosen filter."""
    ops_column, ms_column = f"billion operations per image at {size} px", f"ms per image at {size} px (est.)"
    tiers = ("all", *backbones.TIERS)
    tier = st.radio("Show", tiers, key=UI + "tier", horizontal=True,
                    format_func=lambda t: "All" if t == "all" else backbones.TIERS[t][0],
                    help="Narrows the list of backbones. Small and fast: under 1.5 billion operations per image. "
                         "Balanced: up to 12 billion, and a first guess right on 75% or more of ImageNet's held-out "
                         "photos (its 'top-1' score). Most accurate: top-1 of 82% or more.")
    with st.expander("All backbones side by side (click a column to sort)"):
        st.dataframe(pd.DataFrame([
            {
                "backbone": s.label, "ImageNet weights": weights_where(s, size), "ImageNet top-1 %": s.top1,
                "parameters (millions)": s.base_params_m, "download (MB)": s.size_mb,
                ops_column: round(ops_at(s, size), 3), ms_column: round(ms_at(s, size)),
                "pretrained at (px)": s.default_size, "image sizes": f"{s.min_size}-{s.max_size} px",
                "layer groups": len(s.groups),
            }
            for s in backbones.BACKBONES.values() if backbones.in_tier(s, tier) and s.kind == kind
        ]), hide_index=True, width="stretch",
            column_config={
                "parameters (millions)": st.column_config.NumberColumn(
                    help="The weights of the backbone alone (without ImageNet's 1,000-class classifier), the part "
                         "your model keeps."),
                ops_column: st.column_config.NumberColumn(
                    help=f"Billions of operations to look at one image of {size} px, the image size chosen "
                         "below (they grow with the number of pixels)."),
                ms_column: st.column_config.NumberColumn(
                    help=f"For one image of {size} px on a 2-core CPU: one backbone per family was timed at its "
                         "pretrained size, the others scaled by their operations.")})
    return tier


def hub_ui() -> str:
    """A TF Hub feature-vector handle: a well-known one or any address or SavedModel folder."""
    known = {m.handle: m for m in backbones.HUB_MODELS}
    choice = st.selectbox("Well-known TF Hub models", (*known, "other"), key=UI + "hub_choice",
                          format_func=lambda h: f"{known[h].label}: {known[h].note}" if h in known else "Another one…",
                          help="Pretrained image models published on TF Hub (Google's collection of ready-made "
                               "models), each usable as a backbone. 'Another one…' lets you give any address.")
    if choice != "other":
        st.session_state[UI + "hub_handle"] = choice
    handle = st.text_input("TF Hub address or SavedModel folder", key=UI + "hub_handle", disabled=choice != "other",
                           help="A tfhub.dev / kaggle.com address, or a TensorFlow SavedModel folder on this "
                                "computer, of a 'feature-vector' model: one that takes colour (RGB) images and returns "
                                "one list of numbers describing each.")
    st.caption("TF Hub models are downloaded into the workspace when training starts. Offline, only SavedModel "
               "folders on this computer work; training says so and switches to a cached Keras backbone otherwise.")
    if not handle.strip():
        return backbones.HUB_PREFIX
    try:
        return backbones.hub_id(handle)
    except ConfigError as exc:  # a server folder on a shared server
        st.error(str(exc))
        return backbones.HUB_PREFIX


def kind_backbone_ui(kind: kinds.Kind) -> backbones.BackboneSpec:
    """For a kind other than images: only its own networks (texts: text encoders), with their pretraining."""
    key = K + "backbone"
    options = backbones.for_kind(kind.id)
    keep_in(key, options, options[0])

    def label(backbone_id: str) -> str:
        spec = backbones.get(backbone_id)
        if "imagenet" not in spec.weights_options:
            return spec.label
        return f"{spec.label} (weights {weights_where(spec, spec.default_size)})"

    st.caption(f"Only networks that read {kind.items} are offered for this dataset of {kind.items}.")
    chosen = st.selectbox(fields.get("backbone").label, options, key=key, persist_state="session", format_func=label,
                          help=fields.get("backbone").help)
    return backbones.get(chosen)


# Kinds of data whose backbone is chosen from their own short list (no image tiers, no TF Hub image models).
KIND_BACKBONE_UIS = {"text": kind_backbone_ui}


def backbone_ui(strategy: strategies.Strategy, source: sources.RunSource | None, kind: str) -> backbones.BackboneSpec:
    st.caption(
        "The **backbone** is the network that has already learned to see, by training on millions of photos. "
        "Bigger backbones are usually more accurate but slower to train and to use."
    )
    size = int(st.session_state[K + "image_size"])
    if strategy.source:
        if source is None:
            return backbones.get(st.session_state[K + "backbone"])
        spec = backbones.get(source.backbone)
        st.markdown(f"Backbone: **{spec.label}**, the one run `{source.run_id[-12:]}` trained (its weights fit only it).")
        return spec
    where = st.radio("Where the backbone comes from", ("keras", "hub"), key=UI + "source", horizontal=True,
                     format_func={"keras": "Keras applications", "hub": "TF Hub"}.get,
                     help="Keras applications: the standard pretrained networks that come with TensorFlow, listed "
                          "below. TF Hub: a pretrained image model published on TF Hub, or one saved on this computer.")
    if where == "hub":
        return backbones.get(hub_ui())
    tier = backbone_table_ui(size, kind)

    def label(backbone_id: str) -> str:
        spec = backbones.get(backbone_id)
        if "imagenet" not in spec.weights_options:
            return f"{spec.label} ({spec.base_params_m:g} million parameters, no pretraining)"
        top1 = f", ImageNet top-1 {spec.top1:g}%" if spec.top1 is not None else ""  # other kinds have no ImageNet score
        return f"{spec.label} ({spec.base_params_m:g} million parameters{top1}, weights {weights_where(spec, size)})"

    key = K + "backbone"
    options = tuple(b for b in backbones.for_kind(kind)  # the backbones that read the dataset's kind of data
                    if backbones.in_tier(backbones.get(b), tier) or b == st.session_state[key])
    chosen = st.selectbox(fields.get("backbone").label, options, key=key, persist_state="session", format_func=label,
                          help=fields.get("backbone").help, on_change=_backbone_chosen)
    spec = backbones.get(chosen)
    st.caption(f"About {ops_at(spec, size):.2g} billion operations per image at {size} px (about "
               f"{ms_at(spec, size):,.0f} ms per image on a 2-core CPU); {len(spec.groups)} layer groups; "
               f"the backbone's own preprocessing of the pixels is built into the model.")
    return spec


def _backbone_chosen() -> None:
    """A backbone with a measured from-scratch recipe (the small CNN) brings its settings along, as `config
    --backbone` does (config.scratch_settings): rate, schedule, epochs, image size, batch size. They can be changed
    afterwards."""
    spec = backbones.get(st.session_state[K + "backbone"])
    if not spec.scratch_recipe:
        return
    recipe = scratch_settings(spec, int(st.session_state[K + "epochs"]), int(st.session_state[K + "batch_size"]))
    for name, value in recipe.items():
        if K + name in st.session_state:
            st.session_state[K + name] = value


def _strategy_chosen(kind: str) -> None:
    """A strategy with a measured recipe (distillation's long student schedule) brings its settings along, as
    `config --strategy` does (config.strategy_settings). They can be changed afterwards."""
    strategy = strategies.get(st.session_state[K + "strategy"])
    augment = {f.name: bool(st.session_state.get(K + "augment." + f.name)) for f in dataclass_fields(AugmentConfig)}
    for name, value in strategy_settings(strategy, augment, kind).items():
        for key, v in ({K + "augment." + k: x for k, x in value.items()} if name == "augment" else {K + name: value}).items():
            if key in st.session_state:
                st.session_state[key] = v


def strategy_ui(kind: kinds.Kind | None = None) -> strategies.Strategy:
    """The strategies that apply to the dataset's kind of data; the others named with why (as `config` refuses them)."""
    offered = strategies.for_kind(kind.id) if kind else strategies.ids()
    keep_in(K + "strategy", offered, offered[0])
    if kind and len(offered) < len(strategies.ids()):
        st.caption(f"Not offered for {kind.items}: " + " ".join(
            f"**{strategies.get(s).label}**: {strategies.refusal(s, kind.id)}"
            for s in strategies.ids() if s not in offered))
    chosen = st.selectbox(
        fields.get("strategy").label, offered, key=K + "strategy", persist_state="session",
        format_func=lambda s: strategies.get(s).label, help=fields.get("strategy").help, on_change=_strategy_chosen,
        args=(kind.id if kind else "image",),
    )
    strategy = strategies.get(chosen)
    st.markdown(f"{strategy.sentence}  \n**Use it when:** {strategy.use_when}")
    return strategy


def source_run_ui(strategy: strategies.Strategy, found: list[sources.RunSource]) -> sources.RunSource | None:
    """The earlier run a strategy starts from; None (with the reason shown) when there is none to choose."""
    if not strategy.source:
        return None
    usable = [s for s in found if strategy.source != "early" or s.has_early_checkpoint]
    if not usable:
        st.warning("There is no finished run in this workspace to start from yet"
                   + (" (with an early checkpoint)" if strategy.source == "early" else "")
                   + ". Train a model first, for example with feature extraction, then come back.")
        return None
    by_id = {s.run_id: s for s in usable}
    key = K + "source_run"
    keep_in(key, tuple(by_id), usable[0].run_id)
    chosen = st.selectbox(fields.get("source_run").label, tuple(by_id), key=key, persist_state="session",
                          format_func=lambda r: by_id[r].label, help=fields.get("source_run").help)
    return by_id[chosen]


def weights_ui(spec: backbones.BackboneSpec, strategy: strategies.Strategy, image_size: int) -> str:
    """Where the backbone's weights start from; fixed when the strategy or backbone allows only one."""
    only = only_weights(strategy, spec)  # the same rule as the config command's
    if only == "run":
        st.caption(f"{fields.get('weights').label}: **{WEIGHT_WORDS['run']}** (the only choice for {strategy.label}).")
        return "run"
    if only:
        # The radio's own value is left alone, so it comes back when the choice opens up again.
        why = strategy.label if strategy.forced_weights else spec.label
        st.caption(f"{fields.get('weights').label}: **{WEIGHT_WORDS.get(only, only)}** (the only choice for {why}).")
        weights = only
    else:
        key = K + "weights"
        allowed = spec.weights_options
        keep_in(key, allowed, allowed[0])
        weights = st.radio(fields.get("weights").label, allowed, key=key, persist_state="session", horizontal=True,
                           format_func=lambda w: WEIGHT_WORDS.get(w, w), help=fields.get("weights").help)
    if weights == "imagenet" and not spec.hub_handle and backbones.cached_weights(spec, image_size):
        st.caption("The ImageNet weights for this backbone are already on this computer.")
    elif weights == "none" and strategy.forced_weights is None:
        st.warning(f"{strategy.label} is meant for a pretrained backbone: with random weights there is no "
                   "knowledge to transfer. Choose From scratch to train the whole network from random weights.")
    return weights


def image_size_ui(spec: backbones.BackboneSpec) -> int:
    key = K + "image_size"
    low, high = max(spec.min_size, int(RANGES["image_size"][0])), min(spec.max_size, int(RANGES["image_size"][1]))
    value = min(max(clamp_image_size(int(st.session_state[key]), spec), low), high)
    # Snap to the slider's grid (a loaded config may hold any size within the bounds).
    st.session_state[key] = min(high, low + round((value - low) / IMAGE_STEP) * IMAGE_STEP) if value < high else high
    setting = fields.get("image_size")
    return st.slider(setting.label, low, high, step=IMAGE_STEP, key=key, persist_state="session",
                     help=setting.help_for(backbone=spec.label, pretrained=spec.default_size))


def training_ui(strategy: strategies.Strategy) -> dict[str, Any]:
    st.caption(
        "An **epoch** is one pass over all the training images. Training stops early when the model has "
        "stopped improving on the validation images (images held back to check it during training)."
    )
    later = "fine_tune_epochs" in strategy.settings
    left, middle, right = st.columns(3)
    values: dict[str, Any] = {}
    lo, hi = RANGES["epochs"]
    values["epochs"] = left.number_input(
        fields.get("epochs").label, int(lo), int(hi), step=1, key=K + "epochs", persist_state="session",
        help=fields.get("epochs").help_for(phase=" in the first phase" if later else ""))
    key = K + "learning_rate"
    values["learning_rate"] = middle.select_slider(
        fields.get("learning_rate").label, with_current(in_range(LEARNING_RATES, "learning_rate"), key), key=key,
        persist_state="session", format_func=lambda v: f"{v:g}", help=fields.get("learning_rate").help)
    key = K + "batch_size"
    values["batch_size"] = right.select_slider(
        fields.get("batch_size").label, with_current(in_range(BATCH_SIZES, "batch_size"), key), key=key,
        persist_state="session", help=fields.get("batch_size").help)
    if later:
        values |= later_phases_ui(strategy)
    return values


def later_phases_ui(strategy: strategies.Strategy) -> dict[str, Any]:
    """The settings of the phases after the head: fine-tuning, or each step of gradual unfreezing."""
    gradual = strategy.id == "gradual_unfreeze"
    st.markdown("**Unfreezing steps**" if gradual else "**Fine-tuning phase**")
    left, middle, right = st.columns(3)
    values: dict[str, Any] = {}
    key = K + "fine_tune_epochs"
    low = max(strategy.min_fine_tune_epochs, int(RANGES["fine_tune_epochs"][0]))
    if st.session_state[key] < low:  # the same rule as the config command's
        name = st.session_state.get(K + "preset", "quick")
        st.session_state[key] = least_fine_tune_epochs(strategy, preset_values(name, _proposal(name)))
    setting = fields.get("fine_tune_epochs")
    values["fine_tune_epochs"] = left.number_input(
        setting.label_for(strategy.id), low, int(RANGES["fine_tune_epochs"][1]), step=1, key=key,
        persist_state="session", help=setting.help_for(strategy.id, zero=" (0: no fine-tuning)." if low == 0 else "."))
    key = K + "fine_tune_learning_rate"
    values["fine_tune_learning_rate"] = middle.select_slider(
        fields.get("fine_tune_learning_rate").label,
        with_current(in_range(LEARNING_RATES, "fine_tune_learning_rate"), key), key=key, persist_state="session",
        format_func=lambda v: f"{v:g}", help=fields.get("fine_tune_learning_rate").help)
    if "fine_tune_layers" in strategy.settings:
        unit = st.session_state[K + "fine_tune_unit"]
        lo, hi = RANGES["fine_tune_layers"]
        values["fine_tune_layers"] = right.number_input(
            fields.get("fine_tune_layers").label_for(unit=unit), int(lo), int(hi), step=1, key=K + "fine_tune_layers",
            persist_state="session", help=fields.get("fine_tune_layers").help)
        values["fine_tune_unit"] = st.radio(
            fields.get("fine_tune_unit").label, CHOICES["fine_tune_unit"], key=K + "fine_tune_unit",
            persist_state="session", horizontal=True, help=fields.get("fine_tune_unit").help)
    return values


def augment_ui(kind: str) -> dict[str, bool]:
    """The augmentations of the dataset's kind of data; a kind with none says so."""
    own = [f for f in dataclass_fields(AugmentConfig) if augment_kinds().get(f.name) == kind]
    if not own:
        st.caption(f"**Augmentation** is not used for {kinds.get(kind).items}: changing a few words at random "
                   "changes what a text means, so each one is learnt as written.")
        return {f.name: False for f in dataclass_fields(AugmentConfig)}
    changes = {"image": "mirrored, turned, zoomed…", "audio": "noisier, louder, shifted in time…"}.get(kind, "changed")
    st.caption(
        f"**Augmentation** shows the model slightly changed copies of the training {kinds.get(kind).items} "
        f"({changes}), new ones every epoch, so it learns what matters instead of memorising the exact "
        f"{'pictures' if kind == 'image' else kinds.get(kind).items}."
    )
    columns = st.columns(3)
    values = {}
    for i, f in enumerate(own):
        label, help_text = _common.AUGMENT_WORDS.get(f.name, (f.name.capitalize(), None))
        values[f.name] = columns[i % 3].checkbox(label, key=K + "augment." + f.name, persist_state="session",
                                                 help=help_text)
    return values


def augment_views_ui() -> int:
    """How many augmented copies per image to prepare once, when the backbone is frozen."""
    lo, hi = RANGES["augment_views"]
    return st.number_input(
        fields.get("augment_views").label, int(lo), int(hi), step=1, key=K + "augment_views",
        persist_state="session", help=fields.get("augment_views").help)


def head_ui(spec: backbones.BackboneSpec) -> dict[str, Any]:
    st.caption("The new classifier put on top of the backbone, which learns your classes.")
    left, right = st.columns(2)
    values: dict[str, Any] = {}
    values["pooling"] = left.selectbox(
        fields.get("head.pooling").label, CHOICES["head.pooling"], key=K + "head.pooling", persist_state="session",
        format_func=POOLING_WORDS.get, disabled=bool(spec.hub_handle), help=fields.get("head.pooling").help)
    key = K + "head.l2"
    values["l2"] = right.select_slider(
        fields.get("head.l2").label, with_current(in_range(L2_VALUES, "head.l2"), key), key=key,
        persist_state="session", format_func=lambda v: "off" if v == 0 else f"{v:g}", help=fields.get("head.l2").help)
    left, right = st.columns(2)
    lo, hi = RANGES["head.dropout"]
    values["dropout"] = left.slider(
        fields.get("head.dropout").label, float(lo), float(hi), step=0.05, key=K + "head.dropout",
        persist_state="session", help=fields.get("head.dropout").help)
    lo, hi = RANGES["head.hidden_units"]
    values["hidden_units"] = right.number_input(
        fields.get("head.hidden_units").label, int(lo), int(hi), step=32, key=K + "head.hidden_units",
        persist_state="session", help=fields.get("head.hidden_units").help)
    return values


def advanced_ui() -> dict[str, Any]:
    values: dict[str, Any] = {}
    left, middle, right = st.columns(3)
    values["optimizer"] = left.selectbox(
        fields.get("optimizer").label, CHOICES["optimizer"], key=K + "optimizer", persist_state="session",
        format_func=OPTIMIZER_WORDS.get, help=fields.get("optimizer").help)
    values["schedule"] = middle.selectbox(
        fields.get("schedule").label, CHOICES["schedule"], key=K + "schedule", persist_state="session",
        format_func=SCHEDULE_WORDS.get, help=fields.get("schedule").help)
    lo, hi = RANGES["patience"]
    values["patience"] = right.number_input(
        fields.get("patience").label, int(lo), int(hi), step=1, key=K + "patience", persist_state="session",
        help=fields.get("patience").help)
    left, middle, right = st.columns(3)
    lo, hi = RANGES["label_smoothing"]
    values["label_smoothing"] = left.slider(
        fields.get("label_smoothing").label, float(lo), float(hi), step=0.05, key=K + "label_smoothing",
        persist_state="session", help=fields.get("label_smoothing").help)
    values["class_weights"] = middle.selectbox(
        fields.get("class_weights").label, CHOICES["class_weights"], key=K + "class_weights", persist_state="session",
        format_func=CLASS_WEIGHT_WORDS.get, help=fields.get("class_weights").help)
    lo, hi = RANGES["seed"]
    values["seed"] = right.number_input(
        fields.get("seed").label, int(lo), int(hi), step=1, key=K + "seed", persist_state="session",
        help=fields.get("seed").help)
    values["mixed_precision"] = st.checkbox(
        fields.get("mixed_precision").label, key=K + "mixed_precision", persist_state="session",
        help=fields.get("mixed_precision").help)
    values["compare_scratch"] = st.checkbox(
        fields.get("compare_scratch").label, key=K + "compare_scratch", persist_state="session",
        help=fields.get("compare_scratch").help)
    left, right = st.columns(2)
    for column, name in ((left, "val_fraction"), (right, "test_fraction")):
        lo, hi = RANGES[name]
        values[name] = column.slider(fields.get(name).label, float(lo), float(hi), step=0.05, key=K + name,
                                     persist_state="session", help=fields.get(name).help)
    return values


# ---------------------------------------------------------------- after the config is built


def picture_ui(config: RunConfig) -> None:
    """The strategy's picture: which layer groups train in which phase."""
    table = strategies.phase_table(config)
    st.plotly_chart(charts.strategy_phases(table), width="stretch", key=UI + "picture")
    steps = "; ".join(f"{i}. {label}" for i, label in enumerate(table["labels"], start=1))
    st.caption(f"The layer groups are the backbone's stages, found from its structure (the stem at the bottom). "
               f"Phases: {steps}.")


@st.cache_data(show_spinner=False, max_entries=16)
def _summary(config_json: str, num_classes: int) -> dict[str, Any]:

    return modeling.summary(RunConfig.from_json(config_json), num_classes)


def summary_ui(config: RunConfig, num_classes: int) -> None:
    """Parameters per phase and the layer view: the groups from the registry at once, exact counts on request."""
    spec = backbones.get(config.backbone)
    with st.expander("Model summary: parameters and layers"):
        if spec.groups:
            st.caption(f"{spec.label}: {spec.base_params_m:g} million parameters in {len(spec.groups)} layer groups.")
            st.dataframe(pd.DataFrame([{"group": g["name"], "from layer": g["first"], "to layer": g["last"],
                                        "layers with weights": g["layers"], "parameters": g["params"]}
                                       for g in spec.groups][::-1]), hide_index=True, width="stretch")
        if not st.toggle("Count the trainable parameters of every phase (builds the network: a few seconds, "
                         "longer for big backbones)", key=UI + "count",
                         help="Parameters are the weights: the numbers the network learns. This counts how many of "
                              "them each phase trains."):
            return
        with st.spinner("Building the network…"):
            try:
                counts = _summary(config.to_json(), num_classes)
            except TransferLabError as exc:
                st.info(str(exc))
                return
        st.markdown(f"**{counts['total']:,} parameters** in all, {counts['head']:,} of them in the new head.")
        st.dataframe(pd.DataFrame([{"phase": f"{i}. {_common.PHASE_WORDS.get(p['name'], p['label'])}",
                                    "what trains": p["label"],
                                    "trainable parameters": p["trainable"]}
                                   for i, p in enumerate(counts["phases"], start=1)]), hide_index=True, width="stretch")
        names = [g["name"] for g in counts["groups"]]
        group = st.selectbox("Layers of group", names[::-1], key=UI + "layers_of",
                             help="Lists the layers of one group of the backbone, with their parameters.")
        chosen = counts["groups"][names.index(group)]
        st.dataframe(pd.DataFrame(chosen["layers"]), hide_index=True, width="stretch", height=240)


def code_ui(config: RunConfig, folder: Path, classes: list[str], ws: Path) -> None:
    """'Show me the code': the standalone script for these settings, to read and download."""
    with st.expander("Show me the code"):
        try:
            script = codegen.training_script(config, str(folder), classes=classes, ws=ws)
        except TransferLabError as exc:
            st.info(str(exc))
            return
        st.caption("A standalone Python script (TensorFlow with tf_keras) that trains the same model on the same "
                   "folder of images: loading, the backbone and its preprocessing, the head, and each phase.")
        st.download_button("Download train.py", script, file_name="train.py", mime="text/x-python",
                           key=UI + "download_code", icon=":material/download:",
                           help="The script shown below, to train the same model without TransferLab.")
        st.code(script, language="python", line_numbers=True)


def _classifier_here(spec: backbones.BackboneSpec) -> bool:
    """Whether the backbone's ImageNet classifier and class names are in the Keras cache (nothing downloaded)."""
    models = backbones.keras_models_dir()
    files = spec.top_weights_files(backbones.classifier_size(spec))
    return any((models / f.name).is_file() for f in files) and (models / backbones.CLASS_INDEX.name).is_file()


def sees_ui(config: RunConfig, info: dict[str, Any], folder: Path) -> None:
    """'What does the pretrained model see?': the backbone's ImageNet top-3 for a few of the user's images."""
    spec = backbones.get(config.backbone)
    if "imagenet" not in spec.weights_options or spec.hub_handle:
        return
    with st.expander("What does the pretrained model see?"):
        st.caption(f"Before any training, {spec.label} names what it sees with its 1,000 ImageNet categories. "
                   "Sensible guesses mean your images are like what it learned from, so its features will serve well.")
        if settings.offline() and not _classifier_here(spec):
            st.info(f"This computer is set to work offline and the ImageNet classifier of {spec.label} (a file apart "
                    "from the weights used for training) is not on it, so it cannot name what it sees here. With "
                    "internet once, it can.")
            return
        if not st.button("Look at a few of my images", key=UI + "sees",
                         help="Shows the pretrained backbone's best guesses for one image of each class (up to six); "
                              "loading it takes a few seconds."):
            return
        samples = [(name, folder / info["images"][name][0]) for name in info["classes"][:6] if info["images"].get(name)]

        with st.spinner("Asking the pretrained model…"):
            try:
                guesses = modeling.pretrained_guesses(spec.id, [p.read_bytes() for _, p in samples])
            except TransferLabError as exc:
                st.info(str(exc))
                return
        columns = st.columns(3)
        for i, ((name, path), top) in enumerate(zip(samples, guesses)):
            with columns[i % 3]:
                st.image(str(path), caption=f"a {name} image", width=160)
                st.markdown("\n".join(f"- {t['label']} ({t['probability']:.0%})" for t in top))


# ---------------------------------------------------------------- page


def build_config(name: str, dataset_id: str, overrides: dict[str, Any]) -> RunConfig | None:
    """The preset with every widget's value applied, validated; None (and the reason shown) if refused."""
    try:
        return preset_config(name, dataset_id, **overrides).validate()
    except ConfigError as exc:
        st.error(str(exc))
        st.session_state.pop("run_config", None)
        return None


def choice_line(config: RunConfig) -> str:
    """The settings in one sentence: what Start on the Train page will train."""
    spec, strategy = backbones.get(config.backbone), strategies.get(config.strategy)
    epochs = sum(p.epochs for p in strategy.phases(config))
    return (f"**You will train:** {_common.mid_sentence(strategy.label)} with **{spec.label}**, {config.image_size} px, "
            f"up to {epochs} epochs in all ({PRESET_NAMES.get(config.preset, 'your own')} settings"
            f"{'' if config == preset_config(config.preset, config.dataset_id) else ', changed under Customise'}).")


def page() -> None:
    ws = _common.workspace()
    st.title("Model")
    info = _common.selected_dataset(ws)
    if info is None:
        _common.no_dataset_guidance()
        return
    _common.hand_ui(info)
    kind = _kinds.of_dataset(info)
    st.session_state[UI + "kind"] = kind.id  # presets and the recommender of this kind of data
    ensure_form(info["id"], ws)

    rec = recommendation(info)
    name = preset_ui(info["id"], rec)
    recommender_ui(info["id"], rec)
    chosen = st.container()
    with st.expander("Customise: strategy, backbone, training, augmentation and the classifier head"):
        st.subheader("Strategy")
        strategy = strategy_ui(kind)
        source = source_run_ui(strategy, sources.run_sources(ws) if strategy.source else [])
        picture = st.container()
        st.subheader("Backbone")
        own_list = None if strategy.source else KIND_BACKBONE_UIS.get(kind.id)
        spec = own_list(kind) if own_list else backbone_ui(strategy, source, kind.id)
        image_size = image_size_ui(spec)
        overrides: dict[str, Any] = {
            "backbone": spec.id, "strategy": strategy.id, "image_size": image_size,
            "weights": weights_ui(spec, strategy, image_size),
            "source_run": source.run_id if source else "",
        }
        extra = _transfer.strategy_controls(strategy, spec, image_size, info["classes"], ws)  # layer_transfer, distill
        if extra is None:
            st.session_state.pop("run_config", None)
            return
        overrides |= extra
        overrides |= _domain.target_ui(strategy, info, ws)  # domain_adversarial, adaptive_layers
        # Hidden settings keep their values, so switching the strategy back restores them.
        overrides |= {f: st.session_state[K + f] for f in ("fine_tune_epochs", "fine_tune_learning_rate",
                                                          "fine_tune_layers", "fine_tune_unit")}
        st.subheader("Training")
        overrides |= training_ui(strategy)
        st.subheader("Augmentation")
        overrides["augment"] = augment_ui(kinds.of(info).id)
        overrides["augment_views"] = augment_views_ui()
        st.subheader("Classifier head")
        overrides["head"] = head_ui(spec)
        with st.expander("Advanced settings"):
            overrides |= advanced_ui()

    if strategy.source and source is None:
        st.session_state.pop("run_config", None)
        return
    config = build_config(name, info["id"], overrides)
    if config is None:
        return
    with picture:
        picture_ui(config)
    st.session_state["run_config"] = config.to_json()
    save_draft(ws, config)
    with chosen:
        st.markdown(choice_line(config))
        _weights.outlook_ui(config)
        st.caption(strategies.speed_note(config))
        st.success("These settings are ready; the Train page uses them.")
    folder = datasets.dataset_path(info["id"], ws)
    summary_ui(config, len(info["classes"]))
    code_ui(config, folder, info["classes"], ws)
    sees_ui(config, info, folder)
    _offline.offline_ui(config, ws)
    with st.expander("The exact settings, as saved with the run"):
        st.json(config.to_json())
    _common.link_to("pages/train.py", "Next: train the model", ":material/monitoring:")


_common.guarded(page)
