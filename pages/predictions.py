"""Predictions: how a finished run does on its held-out test images, and what it says about new images.

TensorFlow is imported only when the viewer asks for a prediction (core.evaluation, lazily), and
nothing of one viewer is cached globally: results live in this browser session only.
"""

from typing import Any

import pandas as pd
import streamlit as st

from core import backbones, charts, datasets, runs
from core.errors import DatasetError
from pages import _common

IMAGE_TYPES = [suffix.lstrip(".") for suffix in datasets.IMAGE_SUFFIXES]
PERCENT = st.column_config.NumberColumn(format="percent")
MISTAKES_SHOWN = 12


def run_ui(done: list[runs.RunInfo]) -> runs.RunInfo:
    """Choose a finished run (the active one first, if it has finished)."""
    by_id = {r.id: r for r in done}
    key = "pred.run"
    if st.session_state.get(key) not in by_id:
        active = st.session_state.get("run_id")
        st.session_state[key] = active if active in by_id else done[0].id

    def label(run_id: str) -> str:
        r = by_id[run_id]
        parts = [run_id]
        if r.config is not None:
            parts.append(backbones.get(r.config.backbone).label)
        if r.evaluation and "accuracy" in r.evaluation:
            parts.append(f"test accuracy {r.evaluation['accuracy']:.1%}")
        return " · ".join(parts)

    chosen = st.selectbox("Finished run", list(by_id), key=key, format_func=label,
                          help="Runs that trained to the end. Newest first.")
    return by_id[chosen]


def metrics_ui(ev: dict[str, Any]) -> None:
    """Accuracy, averaged and per-class precision/recall/F1, and the confusion matrix."""
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{ev['accuracy']:.1%}", help="Share of test images whose class was guessed right.")
    cols[1].metric("Macro F1", f"{ev['macro']['f1-score']:.1%}",
                   help="F1 averaged over classes, each class counting the same.")
    cols[2].metric("Weighted F1", f"{ev['weighted']['f1-score']:.1%}",
                   help="F1 averaged over classes, weighted by their number of test images.")
    cols[3].metric("Test images", ev.get("n", "-"), help="Images held back from training and used only for this check.")
    st.caption(
        "**Precision**: when the model says 'this class', how often it is right. **Recall**: of the images "
        "that really are this class, how many it finds. **F1** combines the two into one number."
    )
    averages = pd.DataFrame([
        {"average": name, "precision": ev[key]["precision"], "recall": ev[key]["recall"], "F1": ev[key]["f1-score"]}
        for key, name in (("macro", "macro (every class counts the same)"),
                          ("weighted", "weighted (by test images per class)"))
    ])
    st.dataframe(averages, hide_index=True, width="stretch",
                 column_config={"precision": PERCENT, "recall": PERCENT, "F1": PERCENT})
    left, right = st.columns([1, 1])
    with left:
        st.markdown("**Per class**")
        per_class = pd.DataFrame(ev["per_class"]).rename(columns={"f1": "F1", "support": "test images"})
        st.dataframe(per_class, hide_index=True, width="stretch",
                     column_config={"precision": PERCENT, "recall": PERCENT, "F1": PERCENT})
    with right:
        st.plotly_chart(charts.confusion_matrix(ev["confusion_matrix"], ev["classes"]), width="stretch",
                        key="pred.confusion")
        st.caption("Each row is the true class, each column the class the model guessed: "
                   "the diagonal holds the right answers, everything else a mix-up.")


def mistakes_ui(run: runs.RunInfo, ev: dict[str, Any]) -> None:
    """A few test images the model got wrong, when the dataset is still in the workspace."""
    wrong = [p for p in ev.get("predictions", []) if p["true"] != p["pred"]]
    if not wrong or run.config is None:
        return
    try:
        root = datasets.dataset_path(run.config.dataset_id, run.path.parent.parent)
    except DatasetError:
        return
    classes = ev["classes"]
    with st.expander(f"Test images the model got wrong ({len(wrong)})"):
        shown = [p for p in wrong if (root / p["file"]).is_file()][:MISTAKES_SHOWN]
        st.image([str(root / p["file"]) for p in shown], width=120,
                 caption=[f"{classes[p['true']]}, guessed {classes[p['pred']]}" for p in shown])


def try_ui(run: runs.RunInfo) -> None:
    """Classify the viewer's own images with the chosen run's model."""
    st.subheader("Try it on your own images")
    if not (run.path / "model.keras").is_file():
        st.info("This run has no saved model file, so it cannot classify new images.")
        return
    files = st.file_uploader("Images to classify", type=IMAGE_TYPES, accept_multiple_files=True,
                             key="pred.upload", help="Any photos; they are only used for this prediction.")
    if not files:
        return
    wanted = (run.id, tuple(f.file_id for f in files))
    cached = st.session_state.get("pred.results")
    if cached and cached[0] == wanted:
        results = cached[1]
    else:
        with st.spinner("Loading the model and classifying (the first time takes a few seconds)…"):
            from core import evaluation  # imports TensorFlow: only now that a prediction is asked for

            results = evaluation.predict(run.path, [(f.name, f.getvalue()) for f in files], top_k=5)
        st.session_state["pred.results"] = (wanted, results)
    for i, (upload, result) in enumerate(zip(files, results)):
        if "error" in result:
            st.warning(result["error"])
            continue
        left, right = st.columns([1, 3])
        left.image(upload.getvalue(), caption=upload.name, width=160)
        best = result["top"][0]
        right.markdown(f"**{result['prediction']}** ({best['probability']:.0%} sure)")
        right.plotly_chart(charts.probabilities(result["top"]), width="stretch", key=f"pred.probabilities.{i}")


def page() -> None:
    ws = _common.workspace()
    st.title("Predictions")
    done = [r for r in runs.list_runs(ws) if r.state == "done"]
    if not done:
        st.info("No run has finished training yet. Start one on the Train page.")
        _common.link_to("pages/train.py", "Go to the Train page", ":material/monitoring:")
        return
    run = run_ui(done)
    ev = run.evaluation
    st.subheader("How well it does on images it never saw")
    if not ev:
        st.warning("This run has no test evaluation (its eval.json is missing or unreadable).")
    else:
        metrics_ui(ev)
        mistakes_ui(run, ev)
    try_ui(run)


_common.guarded(page)
