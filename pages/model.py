"""Model: a preset, a backbone, a transfer strategy and the training settings, built into one RunConfig.

Every option and bound comes from core (BACKBONES, STRATEGIES, CHOICES, RANGES, PRESETS), the same
declarations RunConfig.validate() checks, so the page never offers a value the trainer refuses.
"""

from dataclasses import fields
from typing import Any

import pandas as pd
import streamlit as st

from core import backbones, strategies
from core.config import CHOICES, PRESETS, RANGES, AugmentConfig, RunConfig, preset
from core.errors import ConfigError, TransferLabError
from pages import _common

K = "model."  # prefix of this page's widget keys: K + a RunConfig field ("head.dropout" for nested ones)

# Top-level RunConfig fields that have a widget; head and augment fields are added below.
FORM_FIELDS = (
    "backbone", "weights", "strategy", "image_size", "epochs", "learning_rate", "batch_size",
    "fine_tune_epochs", "fine_tune_learning_rate", "fine_tune_layers",
    "optimizer", "patience", "val_fraction", "test_fraction", "seed", "augment_views", "compare_scratch",
)
HEAD_FIELDS = ("pooling", "dropout", "hidden_units")

PRESET_LEADS = {
    "quick": "Fastest: a first model within minutes on an ordinary laptop.",
    "balanced": "The usual starting point: a bigger backbone at a larger image size.",
    "best": "Most accurate and slowest: the strongest backbone, then fine-tuned.",
}
AUGMENT_WORDS = {
    "flip": ("Flip left-right", "Mirror images at random; fine unless left and right matter (text, arrows)."),
    "rotate": ("Rotate a little", "Turn images by up to about 36 degrees either way."),
    "zoom": ("Zoom in and out", "Zoom by up to 15%, as if photographed nearer or farther away."),
    "contrast": ("Change contrast", "Vary the contrast by up to 20%."),
    "brightness": ("Change brightness", "Make images up to 20% lighter or darker."),
    "translate": ("Shift position", "Move the image by up to 10% sideways and up or down."),
}
WEIGHT_WORDS = {"imagenet": "Pretrained on ImageNet", "none": "Random (no pretraining)"}
LEARNING_RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
BATCH_SIZES = (4, 8, 16, 32, 64, 128)
IMAGE_STEP = 16


# ---------------------------------------------------------------- form state <-> RunConfig


def form_values(config: RunConfig) -> dict[str, Any]:
    """Widget key -> value for every widget of this page, read from a config."""
    values = {K + name: getattr(config, name) for name in FORM_FIELDS}
    values |= {K + "head." + name: getattr(config.head, name) for name in HEAD_FIELDS}
    values |= {K + "augment." + f.name: getattr(config.augment, f.name) for f in fields(AugmentConfig)}
    values[K + "preset"] = config.preset or "quick"
    return values


def load_form(config: RunConfig) -> None:
    """Put a config's values into the widgets (before they are drawn)."""
    st.session_state.update(form_values(config))


def ensure_form(dataset_id: str) -> None:
    """Fill widgets that have no value yet: from the config built last time, else the quick preset."""
    try:
        start = RunConfig.from_json(st.session_state["run_config"])
    except (KeyError, TransferLabError):
        start = preset("quick", dataset_id)
    for key, value in form_values(start).items():
        st.session_state.setdefault(key, value)


def apply_preset(dataset_id: str) -> None:
    """Callback of the preset radio: reset every setting to the chosen preset."""
    load_form(preset(st.session_state[K + "preset"], dataset_id))


def uses_fine_tune(strategy_id: str) -> bool:
    """True when the strategy has a phase that retrains the top of the backbone."""
    probe = RunConfig(dataset_id="probe", fine_tune_epochs=1)
    return any(phase.base_trainable == "top" for phase in strategies.get(strategy_id).phases(probe))


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


# ---------------------------------------------------------------- widgets


def preset_ui(dataset_id: str) -> str:
    def caption(name: str) -> str:
        p = PRESETS[name]
        spec, strategy = backbones.get(p["backbone"]), strategies.get(p["strategy"])
        return f"{PRESET_LEADS.get(name, '')} {spec.label}, {p['image_size']} px, {strategy.label.lower()}."

    return st.radio(
        "Start from a preset", tuple(PRESETS), key=K + "preset", persist_state="session", format_func=str.capitalize,
        captions=[caption(name) for name in PRESETS], horizontal=True,
        on_change=apply_preset, args=(dataset_id,),
        help="Choosing a preset resets all the settings below to it; you can then change any of them.",
    )


def backbone_ui() -> backbones.BackboneSpec:
    st.caption(
        "The **backbone** is the network that has already learned to see, by training on millions of photos. "
        "Bigger backbones are usually more accurate but slower to train and to use."
    )

    size = int(st.session_state[K + "image_size"])

    def label(backbone_id: str) -> str:
        spec = backbones.get(backbone_id)
        if "imagenet" not in spec.weights_options:
            return f"{spec.label} ({spec.params_m:g}M parameters, no pretraining)"
        where = "weights on this computer" if backbones.cached_weights(spec, size) else "weights downloaded when needed"
        return f"{spec.label} ({spec.params_m:g}M parameters, ImageNet top-1 {spec.top1:g}%, {where})"

    chosen = st.selectbox("Backbone", backbones.ids(), key=K + "backbone", persist_state="session", format_func=label,
                          help="ImageNet top-1: how often the backbone's first guess was right on ImageNet's "
                               "1,000 categories; a rough guide to how good its visual features are.")
    with st.expander("All backbones side by side"):
        st.dataframe(pd.DataFrame([
            {
                "backbone": s.label, "parameters (M)": s.params_m, "weights (MB)": s.size_mb,
                "ImageNet top-1 %": s.top1, "image size": f"{s.min_size}-{s.max_size} px",
                "ImageNet weights": ("no pretraining" if "imagenet" not in s.weights_options else
                                     "on this computer" if backbones.cached_weights(s, s.default_size) else
                                     "downloaded when needed"),
            }
            for s in backbones.BACKBONES.values()
        ]), hide_index=True, width="stretch")
    return backbones.get(chosen)


def strategy_ui() -> strategies.Strategy:
    chosen = st.selectbox(
        "Transfer strategy", strategies.ids(), key=K + "strategy", persist_state="session",
        format_func=lambda s: strategies.get(s).label,
        help="How much of the backbone is retrained on your images.",
    )
    strategy = strategies.get(chosen)
    st.caption(f"{strategy.sentence} **Use it when:** {strategy.use_when}")
    return strategy


def weights_ui(spec: backbones.BackboneSpec, strategy: strategies.Strategy, image_size: int) -> str:
    """Where the backbone's weights start from; fixed when the strategy or backbone allows only one."""
    allowed = (strategy.forced_weights,) if strategy.forced_weights else spec.weights_options
    allowed = tuple(w for w in allowed if w in spec.weights_options)
    if len(allowed) == 1:
        # The radio's own value is left alone, so it comes back when the choice opens up again.
        why = strategy.label if strategy.forced_weights else spec.label
        st.caption(f"Starting weights: **{WEIGHT_WORDS.get(allowed[0], allowed[0])}** (the only choice for {why}).")
        weights = allowed[0]
    else:
        key = K + "weights"
        keep_in(key, allowed, allowed[0])
        weights = st.radio("Starting weights", allowed, key=key, persist_state="session", horizontal=True,
                           format_func=lambda w: WEIGHT_WORDS.get(w, w),
                           help="Pretrained weights are what makes transfer learning work; "
                                "random weights show what the network learns from your images alone.")
    if weights == "imagenet":
        if backbones.cached_weights(spec, image_size):
            st.caption("The ImageNet weights for this backbone are already on this computer.")
        else:
            st.caption(
                f"The ImageNet weights (about {spec.size_mb:g} MB) are downloaded when training starts. "
                "Without internet, training switches to the best backbone whose weights are on this computer, "
                "or to a small network trained from scratch, and says so on the Train page."
            )
    elif strategy.forced_weights is None:
        st.warning(f"{strategy.label} is meant for a pretrained backbone: with random weights there is no "
                   "knowledge to transfer. Choose From scratch to train the whole network from random weights.")
    return weights


def image_size_ui(spec: backbones.BackboneSpec) -> int:
    key = K + "image_size"
    low, high = max(spec.min_size, int(RANGES["image_size"][0])), min(spec.max_size, int(RANGES["image_size"][1]))
    value = min(max(int(st.session_state[key]), low), high)
    # Snap to the slider's grid (a loaded config may hold any size within the bounds).
    st.session_state[key] = min(high, low + round((value - low) / IMAGE_STEP) * IMAGE_STEP) if value < high else high
    return st.slider("Image size (pixels per side)", low, high, step=IMAGE_STEP, key=key, persist_state="session",
                     help=f"Images are resized to this square size. {spec.label} was pretrained at "
                          f"{spec.default_size} px; smaller is faster, larger can see finer detail.")


def training_ui(fine_tune: bool) -> dict[str, Any]:
    st.caption(
        "An **epoch** is one pass over all the training images. Training stops early when the model has "
        "stopped improving on the validation images (images held back to check it during training)."
    )
    left, middle, right = st.columns(3)
    values: dict[str, Any] = {}
    lo, hi = RANGES["epochs"]
    values["epochs"] = left.number_input(
        "Epochs", int(lo), int(hi), step=1, key=K + "epochs", persist_state="session",
        help="The most passes over the training images" + (" in the first phase." if fine_tune else "."))
    key = K + "learning_rate"
    values["learning_rate"] = middle.select_slider(
        "Learning rate", with_current(in_range(LEARNING_RATES, "learning_rate"), key), key=key, persist_state="session",
        format_func=lambda v: f"{v:g}",
        help="How big a step the model takes after each batch. Too high and training jumps around; "
             "too low and it learns slowly. 0.001 is a good start.")
    key = K + "batch_size"
    values["batch_size"] = right.select_slider(
        "Batch size", with_current(in_range(BATCH_SIZES, "batch_size"), key), key=key, persist_state="session",
        help="How many images the model looks at before each step. Smaller uses less memory.")
    if fine_tune:
        st.markdown("**Fine-tuning phase**")
        left, middle, right = st.columns(3)
        if st.session_state[K + "fine_tune_epochs"] < 1:
            st.session_state[K + "fine_tune_epochs"] = 5
        lo, hi = RANGES["fine_tune_epochs"]
        values["fine_tune_epochs"] = left.number_input(
            "Fine-tuning epochs", max(1, int(lo)), int(hi), step=1, key=K + "fine_tune_epochs", persist_state="session",
            help="Epochs after the classifier has been trained, with the top of the backbone unfrozen.")
        key = K + "fine_tune_learning_rate"
        values["fine_tune_learning_rate"] = middle.select_slider(
            "Fine-tuning learning rate", with_current(in_range(LEARNING_RATES, "fine_tune_learning_rate"), key),
            key=key, persist_state="session", format_func=lambda v: f"{v:g}",
            help="Kept low so the pretrained knowledge is adjusted, not overwritten.")
        lo, hi = RANGES["fine_tune_layers"]
        values["fine_tune_layers"] = right.number_input(
            "Backbone layers to retrain", int(lo), int(hi), step=1, key=K + "fine_tune_layers", persist_state="session",
            help="How many of the backbone's top layers (those with weights) are retrained.")
    return values


def augment_ui() -> dict[str, bool]:
    st.caption(
        "**Augmentation** shows the model slightly changed copies of the training images (mirrored, turned, "
        "zoomed…), new ones every epoch, so it learns what matters instead of memorising the exact pictures."
    )
    columns = st.columns(3)
    values = {}
    for i, f in enumerate(fields(AugmentConfig)):
        label, help_text = AUGMENT_WORDS.get(f.name, (f.name.capitalize(), None))
        values[f.name] = columns[i % 3].checkbox(label, key=K + "augment." + f.name, persist_state="session",
                                                 help=help_text)
    return values


def augment_views_ui() -> int:
    """How many augmented copies per image to prepare once, when the backbone is frozen."""
    lo, hi = RANGES["augment_views"]
    return st.number_input(
        "Prepared augmented copies per image", int(lo), int(hi), step=1, key=K + "augment_views",
        persist_state="session",
        help="With a frozen backbone, TransferLab can run the backbone once on this many augmented copies of "
             "each image and reuse them, which is much faster. 0 runs the backbone on fresh copies every "
             "epoch: slower, with endless variety.")


def head_ui() -> dict[str, Any]:
    st.caption("The new classifier put on top of the backbone, which learns your classes.")
    left, middle, right = st.columns(3)
    values: dict[str, Any] = {}
    values["pooling"] = left.selectbox(
        "Pooling", CHOICES["head.pooling"], key=K + "head.pooling", persist_state="session",
        help="How the backbone's grid of features is summarised: 'avg' (average, the usual choice), "
             "'max' (strongest response) or 'flatten' (keep every position; many more weights).")
    lo, hi = RANGES["head.dropout"]
    values["dropout"] = middle.slider(
        "Dropout", float(lo), float(hi), step=0.05, key=K + "head.dropout", persist_state="session",
        help="The share of features switched off at random while training, so the classifier "
             "cannot lean on a few of them. Helps against overfitting.")
    lo, hi = RANGES["head.hidden_units"]
    values["hidden_units"] = right.number_input(
        "Hidden units", int(lo), int(hi), step=32, key=K + "head.hidden_units", persist_state="session",
        help="0 goes straight from features to class scores; more adds a hidden layer of that size.")
    return values


def advanced_ui() -> dict[str, Any]:
    values: dict[str, Any] = {}
    left, middle, right = st.columns(3)
    values["optimizer"] = left.selectbox(
        "Optimizer", CHOICES["optimizer"], key=K + "optimizer", persist_state="session",
        help="The rule that updates the weights; adam is a safe default.")
    lo, hi = RANGES["patience"]
    values["patience"] = middle.number_input(
        "Early-stopping patience (epochs)", int(lo), int(hi), step=1, key=K + "patience", persist_state="session",
        help="Stop a phase after this many epochs without a better validation loss; 0 never stops early.")
    lo, hi = RANGES["seed"]
    values["seed"] = right.number_input(
        "Random seed", int(lo), int(hi), step=1, key=K + "seed", persist_state="session",
        help="The same seed gives the same split of the images and the same start.")
    values["compare_scratch"] = st.checkbox(
        "Also train from scratch, to check that transfer learning helped", key=K + "compare_scratch",
        persist_state="session",
        help="After this run, the same network is trained again from random weights for the same number of "
             "epochs. If that baseline does better, the run is flagged 'transfer hurt'. Doubles the time.")
    left, right = st.columns(2)
    for column, name, label in ((left, "val_fraction", "Validation share"), (right, "test_fraction", "Test share")):
        lo, hi = RANGES[name]
        values[name] = column.slider(
            label, float(lo), float(hi), step=0.05, key=K + name, persist_state="session",
            help="Validation images check the model during training; test images are kept aside "
                 "and used once at the end to measure accuracy honestly.")
    return values


# ---------------------------------------------------------------- page


def build_config(name: str, dataset_id: str, overrides: dict[str, Any]) -> RunConfig | None:
    """The preset with every widget's value applied, validated; None (and the reason shown) if refused."""
    try:
        return preset(name, dataset_id, **overrides).validate()
    except ConfigError as exc:
        st.error(str(exc))
        st.session_state.pop("run_config", None)
        return None


def page() -> None:
    ws = _common.workspace()
    st.title("Model")
    info = _common.selected_dataset(ws)
    if info is None:
        _common.no_dataset_guidance()
        return
    st.caption(f"For dataset **{info['name']}** ({', '.join(info['classes'])}).")
    ensure_form(info["id"])

    name = preset_ui(info["id"])
    st.subheader("Backbone and strategy")
    spec = backbone_ui()
    strategy = strategy_ui()
    image_size = image_size_ui(spec)
    overrides: dict[str, Any] = {
        "backbone": spec.id, "strategy": strategy.id, "image_size": image_size,
        "weights": weights_ui(spec, strategy, image_size),
    }
    fine_tune = uses_fine_tune(strategy.id)
    if not fine_tune:
        # Hidden settings keep their values, so switching the strategy back restores them.
        overrides |= {f: st.session_state[K + f] for f in ("fine_tune_epochs", "fine_tune_learning_rate",
                                                          "fine_tune_layers")}
    st.subheader("Training")
    overrides |= training_ui(fine_tune)
    st.subheader("Augmentation")
    overrides["augment"] = augment_ui()
    overrides["augment_views"] = augment_views_ui()
    st.subheader("Classifier head")
    overrides["head"] = head_ui()
    with st.expander("Advanced settings"):
        overrides |= advanced_ui()

    config = build_config(name, info["id"], overrides)
    if config is None:
        return
    st.session_state["run_config"] = config.to_json()
    st.success("These settings are ready; the Train page uses them.")
    with st.expander("The exact settings, as saved with the run"):
        st.json(config.to_json())
    _common.link_to("pages/train.py", "Next: train the model", ":material/monitoring:")


_common.guarded(page)
