"""Domain adaptation on the pages: the target dataset and adaptation settings (Model page) and the
target domain's metrics (Predictions page). The pages call these; core decides everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.data import domains
from core.errors import TransferLabError
from core.spec import strategies
from core.spec.config import CHOICES, RANGES
from core.store import datasets

K = "model."
LOSS_WORDS = {"mmd": "MMD: the same spread of values (DAN)", "coral": "CORAL: the same correlations (Deep CORAL)"}


def target_ui(strategy: strategies.Strategy, info: dict[str, Any], ws: Path) -> dict[str, Any]:
    """The target-domain settings of an adapting strategy, as RunConfig overrides ({} for other strategies)."""
    if not strategy.adapts:
        return {}
    others = {d["id"]: d for d in datasets.list_datasets(ws) if d["id"] != info["id"]}
    if not others:
        st.warning("Domain adaptation needs a second dataset: images from where the model will be used (labels "
                   "optional). Import one on the Data page, then come back.")
        return {"target_dataset_id": ""}
    chosen = st.selectbox(
        "Images from where the model will be used (target domain)", tuple(others), key=K + "target_dataset_id",
        format_func=lambda d: f"{others[d]['name']} ({sum(others[d]['counts'].values()) + len(others[d].get('unlabeled', []))} images)",
        help="Their images train without labels. Class folders named like your classes are used only to measure "
             "accuracy there, on images held out from training.")
    try:
        for message in domains.check_target(info, others[chosen]):
            st.info(message)
    except TransferLabError as exc:
        st.error(str(exc))
    out: dict[str, Any] = {"target_dataset_id": chosen}
    if "adapt_loss" in strategy.settings:
        out["adapt_loss"] = st.radio("What is lined up", CHOICES["adapt_loss"], key=K + "adapt_loss", horizontal=True,
                                     format_func=LOSS_WORDS.get)
    low, high = RANGES["adapt_weight"]
    out["adapt_weight"] = st.number_input(
        "Adaptation weight", min_value=low, max_value=high, value=1.0, key=K + "adapt_weight",
        help="How much lining up the two kinds of images counts against learning your labels; 0 trains the "
             "source-only baseline.")
    out["compare_source_only"] = st.checkbox(
        "Also train without adaptation, to see whether it helps", key=K + "compare_source_only",
        help="Trains the same network on the same images with adaptation weight 0 right after, and compares "
             "their accuracy on the target domain.")
    return out


def target_metrics_ui(ev: dict[str, Any]) -> None:
    """The target domain's accuracy, macro F1 and confusion matrix beside the source test metrics."""
    target = ev.get("target")
    if not target:
        return
    st.subheader("On images from where the model will be used (target domain)")
    if "accuracy" not in target:
        st.info(target.get("note", "No labelled target images, so no accuracy there."))
        return
    left, mid, right = st.columns(3)
    left.metric("Target accuracy", f"{target['accuracy']:.1%}")
    mid.metric("Target macro F1", f"{target['macro']['f1-score']:.1%}")
    right.metric("Source test accuracy", f"{ev['accuracy']:.1%}")
    st.caption(f"On {target['n']} held-out images of the target dataset, never trained on.")
    st.dataframe({"true \\ predicted": ev["classes"],
                  **{c: [row[i] for row in target["confusion_matrix"]] for i, c in enumerate(ev["classes"])}},
                 hide_index=True)
