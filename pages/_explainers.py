"""How the Predictions page explains one prediction, by a kind's `explain` word (core.spec.kinds).

Apart from `pages/_kinds.py` because explaining needs `core.engine.interpret` (scikit-learn on import,
TensorFlow when it runs), which the Data page should not load. A kind whose word has no entry here
gets its answers without an explanation.
"""

from __future__ import annotations

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
