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
from PIL import Image, ImageOps

from core.engine import interpret
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


EXPLAINERS: dict[str, Explainer] = {
    "gradcam": Explainer(
        about="Each image gets the model's answer, how sure it is, and a Grad-CAM heatmap: the parts of the "
              "image that weighed most in that answer.",
        compute=_gradcam, show=_show_gradcam, more_note="Heatmaps are drawn for the first {n} {items} only.",
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
