"""Before Start: whether a config's pretrained weights can be had, and what is trained when they cannot.

Shown on the Model and Train pages, so nobody finds out only after training that a different backbone
(or a small network learning from scratch) was used. The fallback order is core.engine.training's
resolve_weights: the requested weights (cached, else downloaded), the most accurate cached backbone,
a small network from scratch.
"""

from __future__ import annotations

import streamlit as st

from core import settings
from core.engine import transfer
from core.spec import backbones, strategies
from core.spec.config import RunConfig, scratch_settings

# Measured here on the 3,000 flower photos (5 classes), one run each, offline, on this 2-core machine shared with other
# jobs (load 8 to 11), with the current fallback (issue 27's residual small CNN and its recipe, config.scratch_settings:
# 64 px, 20 epochs, batch 16, warm-up + cosine from 3e-3, no early stopping, flip+rotate): 78.7% test accuracy in
# 710 s; the Quick preset (MobileNet V2 0.35 pretrained, 128 px, 10 epochs, stopped after 9) 81.6% in 305 s (same
# split, 450 test photos). On the shapes sample (600 drawings) the fallback reached 96.6% (bench quick-shapes), the
# Quick preset 98.9%. Before issue 27, the plain small CNN (30 epochs): 74.7% in 997 s on the flowers.
SCRATCH_MEASURED = ("on 3,000 photos of 5 kinds of flowers, a small network from scratch reached 79% in about "
                    "12 minutes here, where the Quick preset's pretrained backbone reached 82% in less than half the "
                    "time")


def outlook(config: RunConfig) -> tuple[str, str] | None:
    """("info" | "warning" | "refuse", sentence) when the backbone's ImageNet weights are not on this computer,
    else None. "refuse": the run would start from random weights, so it starts only on the person's explicit choice."""
    spec = backbones.get(config.backbone)
    if config.weights != "imagenet" or spec.hub_handle or backbones.cached_weights(spec, config.image_size):
        return None
    offline = settings.offline()
    if offline:
        missing = (f"The ImageNet weights of {spec.label} are not on this computer, and it is set to work offline, "
                   "so they cannot be downloaded.")
    else:
        missing = (f"The ImageNet weights of {spec.label} (about {spec.size_mb:g} MB) are not on this computer; "
                   "they are downloaded when training starts.")
    alternative = backbones.best_available(config.image_size)
    refusal = transfer.offline_refusal(config)
    if refusal:
        return "refuse", refusal
    if strategies.get(config.strategy).keeps_backbone:
        return "info", missing + " Without internet it would start from random weights, so the run would be refused."
    if alternative is not None:
        lead = "So" if offline else "Without internet,"
        return "info", (f"{missing} {lead} {alternative.label}, whose weights are here, is trained instead, and every "
                        "page names it.")
    lead = "No pretrained backbone is on this computer" if offline else "Without internet no pretrained backbone can be had"
    unadapted = " without domain adaptation" if strategies.get(config.strategy).adapts else ""
    scratch = scratch_settings(backbones.scratch_backbone(spec.kind), config.epochs, config.batch_size)
    return "warning", (f"{missing} {lead}, so a small network learns from scratch{unadapted} instead "
                       f"({scratch['epochs']} epochs, {scratch['image_size']} px images). Expect lower "
                       f"accuracy and longer training than with a pretrained backbone: {SCRATCH_MEASURED}.")


def outlook_ui(config: RunConfig, confirm_key: str | None = None) -> bool:
    """The outlook as a box, or nothing when the weights are ready. With confirm_key, a run that would start from
    random weights needs a ticked box: False until it is ticked (the Train page's Start waits for it)."""
    found = outlook(config)
    if found is None:
        return True
    level, sentence = found
    if level == "refuse":
        st.warning(sentence, icon=":material/cloud_off:")
        if confirm_key is None:
            return False
        return st.checkbox(f"Train {backbones.get(config.backbone).label} from random weights anyway",
                           key=confirm_key, help="Only to see what random weights learn here; expect a low accuracy.")
    (st.warning if level == "warning" else st.info)(sentence, icon=":material/cloud_download:")
    return True
