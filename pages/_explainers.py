"""How the Predictions page explains one prediction, by a kind's `explain` word (core.spec.kinds).

Apart from `pages/_kinds.py` because explaining needs `core.engine.interpret` (scikit-learn on import,
TensorFlow when it runs), which the Data page should not load. A kind whose word has no entry here
gets its answers without an explanation.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image, ImageOps

from core.engine import interpret, sounds
from core.errors import TransferLabError
from core.spec import kinds as spec_kinds
from pages import _charts as charts


@dataclass(frozen=True)
class Explainer:
    """How the Predictions page explains one prediction of one kind."""

    about: str  # a sentence under "Try it": what the explanation shows
    # (model, item's bytes, input size, class index, kind) -> what `show` draws, or {"unavailable": sentence}.
    compute: Callable[[Any, bytes, int, int, spec_kinds.Kind], dict[str, Any]]
    # (a column, what compute gave, the predicted class, an index for widget keys) -> draws it.
    show: Callable[[Any, dict[str, Any], str, int], None]
    # (model, item's bytes, classes) -> the top class per window of a long item (one row: nothing to draw).
    timeline: Callable[[Any, bytes, list[str]], list[dict[str, Any]]] | None = None
    shown_at_most: int = 6  # explanations are computed for the first few items only (each costs a pass)
    more_note: str = "Explanations are given for the first {n} {items} only."


def as_photo(data: bytes, why: dict[str, Any], longest: int = 320) -> dict[str, Any]:
    """The Grad-CAM on the photo as it is, not on the square the model sees: the photo at its own aspect ratio
    (longest side `longest` px) and the heatmap stretched back to it."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError):
        return why  # the square the model saw is still a fair picture
    scale = longest / max(photo.size)
    size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
    heat = Image.fromarray(np.asarray(why["heatmap"], dtype=np.float32)).resize(size, Image.BILINEAR)
    return {**why, "image": np.asarray(photo.resize(size, Image.BILINEAR)), "heatmap": np.asarray(heat)}


def _gradcam(model: Any, data: bytes, size: int, class_index: int, kind: spec_kinds.Kind) -> dict[str, Any]:
    # core.engine.interpret picks its explainer by the kind's `explain`: "gradcam" is the image one.
    return as_photo(data, interpret.explain(model, data, size, class_index))


def _show_gradcam(column: Any, why: dict[str, Any], prediction: str, i: int) -> None:
    column.plotly_chart(charts.gradcam_overlay(why["image"], why["heatmap"]), width="stretch", key=f"pred.gradcam.{i}")
    column.caption(f"Where the model looked to answer '{prediction}': red areas weighed most "
                   "(a Grad-CAM heatmap, from the backbone's last layer of image features).")


def _gradcam_spectrogram(model: Any, data: bytes, size: int, class_index: int, kind: spec_kinds.Kind) -> dict[str, Any]:
    why = interpret.explain(model, data, size, class_index, kind=kind.id)
    db = np.asarray(why["spectrogram"], dtype=np.float32)
    gray = np.clip((db - db.max() + 80.0) / 80.0 * 255.0, 0, 255).astype(np.uint8)
    # High pitches at the top, time to the right: the picture and the heatmap flipped alike.
    return {**why, "image": np.repeat(np.flipud(gray)[..., None], 3, axis=-1), "heatmap": np.flipud(why["heatmap"]),
            "audio": data}


def _show_gradcam_spectrogram(column: Any, why: dict[str, Any], prediction: str, i: int) -> None:
    column.audio(why["audio"])
    column.plotly_chart(charts.gradcam_overlay(why["image"], why["heatmap"]), width="stretch",
                        key=f"pred.gradcam_spectrogram.{i}")
    low, high = why["pitch_hz"]
    column.caption(f"What decided '{prediction}': red areas of the spectrogram (time to the right, pitch upwards) "
                   f"weighed most, above all around {why['seconds']:.1f} s and pitches of {low:,.0f}-{high:,.0f} Hz "
                   "(a Grad-CAM heatmap from the backbone's last layer of features).")


EXPLAINERS: dict[str, Explainer] = {
    "gradcam": Explainer(
        about="Each image gets the model's answer, how sure it is, and a Grad-CAM heatmap: the parts of the "
              "image that weighed most in that answer.",
        compute=_gradcam, show=_show_gradcam, more_note="Heatmaps are drawn for the first {n} {items} only.",
    ),
    "gradcam_spectrogram": Explainer(
        about="Each clip gets the model's answer, how sure it is, and a Grad-CAM heatmap over its spectrogram: "
              "which moments and pitches weighed most in that answer.",
        compute=_gradcam_spectrogram, show=_show_gradcam_spectrogram, timeline=sounds.timeline,
        more_note="Heatmaps are drawn for the first {n} {items} only.",
    ),
}


DECIDING_WORDS = 3  # words named in the sentence under a highlighted text


def _words(model: Any, data: bytes, size: int, class_index: int, kind: spec_kinds.Kind) -> dict[str, Any]:
    # core.engine.interpret picks its explainer by the kind's `explain`: "words" is occlusion of each word.
    return interpret.explain(model, data, size, class_index, kind=kind.id)


def highlighted_html(words: list[dict[str, Any]]) -> str:
    """The text with each word marked by its weight: orange for words that spoke for the class (the stronger, the
    deeper), blue for words that spoke against it, unmarked for the rest; escaped, so a text cannot inject markup."""
    top = max((abs(w["weight"]) for w in words), default=0.0) or 1.0
    out = []
    for w in words:
        word, share = html.escape(w["word"]), abs(w["weight"]) / top
        if share < 0.05:
            out.append(word)
            continue
        colour = "255, 140, 0" if w["weight"] > 0 else "70, 130, 230"
        out.append(f'<mark title="{w["weight"]:+.3f}" style="background: rgba({colour}, {0.15 + 0.7 * share:.2f}); '
                   f'border-radius: 3px; padding: 0 2px">{word}</mark>')
    return '<div class="tl-words">' + " ".join(out) + "</div>"


def deciding(words: list[dict[str, Any]], top: int = DECIDING_WORDS) -> list[str]:
    """The words whose leaving out lowered the class's probability most (only those that spoke for it)."""
    ranked = sorted((w for w in words if w["weight"] > 0), key=lambda w: -w["weight"])
    return [w["word"] for w in ranked[:top]]


def _show_words(column: Any, why: dict[str, Any], prediction: str, i: int) -> None:
    column.markdown(highlighted_html(why["words"]), unsafe_allow_html=True)
    named = deciding(why["words"])
    if named:
        column.caption(f"Deciding words for '{prediction}': " + ", ".join(f"**{w}**" for w in named) + ". Orange words "
                       "spoke for this answer (the deeper, the more), blue ones against it: each word was left out in "
                       "turn to see how much the answer's probability fell.")
    else:
        column.caption(f"No single word decided '{prediction}': leaving any one out hardly changes the answer.")


EXPLAINERS["words"] = Explainer(
    about="Each text gets the model's answer, how sure it is, and its deciding words highlighted: the words whose "
          "leaving out changes the answer's probability most.",
    compute=_words, show=_show_words, more_note="Words are highlighted for the first {n} {items} only.",
)


def _unexplained(kind: spec_kinds.Kind) -> Explainer:
    return Explainer(
        about=f"Each {kind.item} gets the model's answer and how sure it is.",
        compute=lambda model, data, size, index, k: {"unavailable": f"This version of the app cannot explain "
                                                                    f"predictions on {k.items}."},
        show=lambda column, why, prediction, i: None, shown_at_most=0,
    )


def explainer(kind: spec_kinds.Kind) -> Explainer:
    """How this kind's predictions are explained (a plain answer without explanation when none is here)."""
    return EXPLAINERS.get(kind.explain) or _unexplained(kind)


def explain_one(kind: spec_kinds.Kind, model: Any, data: bytes, size: int, class_index: int) -> dict[str, Any]:
    """One prediction's explanation, or the sentence saying why there is none."""
    try:
        return explainer(kind).compute(model, data, size, class_index, kind)
    except TransferLabError as exc:
        return {"unavailable": str(exc)}


def timeline_one(kind: spec_kinds.Kind, model: Any, data: bytes, classes: list[str]) -> list[dict[str, Any]]:
    """The top class per window of a recording longer than one window ([] for a short one, or a kind without)."""
    method = explainer(kind).timeline
    if method is None:
        return []
    try:
        rows = method(model, data, classes)
    except TransferLabError:
        return []
    return rows if len(rows) > 1 else []


def show_timeline(rows: list[dict[str, Any]], key: str) -> None:
    """A long recording's timeline: one bar per window, coloured by its top class, as tall as the model is sure."""
    fig = go.Figure()
    for name in dict.fromkeys(r["prediction"] for r in rows):
        mine = [r for r in rows if r["prediction"] == name]
        fig.add_trace(go.Bar(x=[r["start"] for r in mine], y=[r["confidence"] for r in mine], name=name,
                             width=[r["end"] - r["start"] for r in mine], offset=0,
                             hovertemplate=f"{name}: %{{y:.0%}} at %{{x}} s<extra></extra>"))
    fig.update_layout(height=220, margin=dict(t=10, b=30, l=40, r=10), xaxis_title="seconds",
                      yaxis=dict(title="how sure", tickformat=".0%", range=[0, 1]), legend_title_text="top class")
    st.plotly_chart(fig, width="stretch", key=key)
    st.caption(f"The recording is longer than the {rows[0]['end'] - rows[0]['start']:g} s the model hears at once, "
               "so it was cut into windows: each bar is one window's top class and how sure the model was.")
