"""Domain adaptation on the pages: marking and importing images from where the model will be used
(Data page), the target dataset and adaptation settings (Model page), and the target domain's metrics
and the before / after embedding picture (Predictions page). The pages call these; core decides everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

import plotly.graph_objects as go

from core.data import domains, health, images
from core.engine import domain_map
from core.errors import TransferLabError
from core.spec import fields, strategies
from core.spec.config import CHOICES, RANGES
from core.store import datasets, runs

K = "model."
LOSS_WORDS = {"recolor": "Re-colour: your images' features take the target's correlations (CORAL, recommended)",
              "mmd": "MMD: the same spread of values (DAN)", "coral": "CORAL as a loss (Deep CORAL)"}


def target_ui(strategy: strategies.Strategy, info: dict[str, Any], ws: Path) -> dict[str, Any]:
    """The target-domain settings of an adapting strategy, as RunConfig overrides ({} for other strategies)."""
    if not strategy.adapts:
        return {}
    # Datasets marked as images from where the model will be used come first (sorted keeps the newest-first order).
    found = sorted(datasets.list_datasets(ws), key=lambda d: not datasets.is_target(d))
    others = {d["id"]: d for d in found if d["id"] != info["id"]}
    if not others:
        st.warning("Domain adaptation needs a second dataset: images from where the model will be used (labels "
                   "optional). Import one on the Data page, then come back.")
        return {"target_dataset_id": ""}
    chosen = st.selectbox(
        "Images from where the model will be used (target domain)", tuple(others), key=K + "target_dataset_id",
        format_func=lambda d: _target_label(others[d]),
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
    if "adapt_recolor" in strategy.settings:
        recolor = fields.SETTINGS["adapt_recolor"]
        out["adapt_recolor"] = st.checkbox(recolor.label + ": give your images' features the target's colour", value=True,
                                           key=K + "adapt_recolor", help=recolor.help)
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


def _target_label(d: dict[str, Any]) -> str:
    n = sum(d["counts"].values()) + len(d.get("unlabeled", []))
    kind = ", unlabelled" if not d["classes"] else ""
    return f"{d['name']} ({n} images{kind})" + (" · marked as where the model will be used" if datasets.is_target(d) else "")


# ---------------------------------------------------------------- Data page


def import_role_ui(key: str) -> str:
    """The upload area's choice: a training dataset, or images from where the model will be used (the target)."""
    target = st.checkbox(
        "These are images from where the model will be used", key=key,
        help="They are never trained on with labels. Class folders named like the classes of your dataset in hand "
             "are kept, only to measure accuracy there; any other images are kept without labels. A model trained "
             "on your dataset can then adapt to them (domain adaptation on the Model page); at least "
             f"{domains.MIN_TARGET_IMAGES} images.")
    return "target" if target else "source"


def imported_sentence(info: dict[str, Any]) -> str:
    """What a target import brought in, in one line."""
    if info["classes"]:
        n = sum(info["counts"].values())
        return (f"Imported '{info['name']}': {n} images from where the model will be used, in class folders "
                f"({', '.join(info['classes'])}) that measure accuracy there. Choose it as the target on the Model "
                "page with a domain-adaptation strategy.")
    return (f"Imported '{info['name']}': {len(info.get('unlabeled', []))} unlabelled images from where the model "
            "will be used. Choose it as the target on the Model page with a domain-adaptation strategy.")


def marker_ui(info: dict[str, Any], ws: Path) -> dict[str, Any]:
    """The toggle that marks a dataset as images from where the model will be used; returns the (updated) record."""
    if not info["classes"]:
        st.info(health.unlabelled_report(info)["note"])
        return info
    key = f"data.target_marker.{info['id']}"
    marked = st.toggle(
        "Images from where the model will be used", value=datasets.is_target(info), key=key,
        help="Mark a dataset whose photos come from the place, camera or lighting the model will work in. The Model "
             "page then offers it first as the target of domain adaptation; class folders named like the training "
             "classes measure accuracy there.")
    if marked != datasets.is_target(info):
        try:
            info = datasets.mark_target(info["id"], ws, marked)
        except TransferLabError as exc:
            st.error(str(exc))
    return info


def unlabelled_dataset_ui(info: dict[str, Any], ws: Path, shown: int = 24, columns: int = 6) -> None:
    """A dataset without classes: how many images and a few of them (no class counts, split or preview)."""
    report = health.health_report(info)
    left, right = st.columns(2)
    left.metric("Unlabelled images", f"{report['images']:,}")
    right.metric("Skipped files", report["skipped"])
    root = datasets.dataset_path(info["id"], ws)
    cells = st.columns(columns)
    for i, rel in enumerate(info.get("unlabeled", [])[:shown]):
        with cells[i % columns]:
            st.image(images.thumbnail(root / rel), caption=rel.split("/")[-1], width="stretch")


# ---------------------------------------------------------------- Predictions page


def target_metrics_ui(ev: dict[str, Any], status: dict[str, Any] | None = None) -> None:
    """The target domain's accuracy (and without adaptation, when its companion measured it), macro F1 and confusion
    matrix beside the source test metrics."""
    target = ev.get("target")
    if not target:
        return
    st.subheader("On images from where the model will be used (target domain)")
    if "accuracy" not in target:
        st.info(target.get("note", "No labelled target images, so no accuracy there."))
        return
    without = (status or {}).get("source_only_target_accuracy")
    cells = st.columns(4 if without is not None else 3)
    cells[0].metric("Target accuracy", f"{target['accuracy']:.1%}")
    if without is not None:
        cells[1].metric("Without adaptation", f"{without:.1%}",
                        help="Target accuracy of the same network trained without adaptation (its companion run).")
    cells[-2].metric("Target macro F1", f"{target['macro']['f1-score']:.1%}")
    cells[-1].metric("Source test accuracy", f"{ev['accuracy']:.1%}")
    st.caption(f"On {target['n']} held-out images of the target dataset, never trained on.")
    st.dataframe({"true \\ predicted": ev["classes"],
                  **{c: [row[i] for row in target["confusion_matrix"]] for i, c in enumerate(ev["classes"])}},
                 hide_index=True)


def accuracy_pair_ui(without: float | None, with_: float | None) -> None:
    """Target-domain accuracy without and with adaptation, side by side (what the map's sentence is checked against)."""
    if without is None or with_ is None:
        return
    left, right = st.columns(2)
    left.metric("Target accuracy without adaptation", f"{without:.1%}")
    right.metric("Target accuracy with adaptation", f"{with_:.1%}", delta=f"{100 * (with_ - without):+.1f} points")


DOMAIN_COLOURS = {"source": "#1f77b4", "target": "#ff7f0e"}
DOMAIN_WORDS = {"source": "training images (source)", "target": "images from where it will be used (target)"}


def domain_figure(view: dict[str, Any], title: str) -> go.Figure:
    """The 2-D map of one run: a dot per image, coloured by domain."""
    fig = go.Figure()
    points = view["points"]
    for domain in ("source", "target"):
        idx = [i for i, d in enumerate(view["domains"]) if d == domain]
        fig.add_trace(go.Scattergl(
            x=[points[i][0] for i in idx], y=[points[i][1] for i in idx], mode="markers", name=DOMAIN_WORDS[domain],
            marker={"color": DOMAIN_COLOURS[domain], "size": 7, "opacity": 0.7},
            text=[view["files"][i] for i in idx], hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title, legend={"orientation": "h", "y": -0.15}, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      xaxis={"showticklabels": False, "title": ""}, yaxis={"showticklabels": False, "title": ""})
    return fig


def domain_map_ui(run: runs.RunInfo, model_of: Any) -> None:
    """Before / after adaptation: source and target images in one map, for the source-only run and this one.

    `model_of(run)` gives this run's loaded model (the page keeps one per session).
    """
    if not (run.config and run.config.target_dataset_id):
        return
    st.subheader("Do the two kinds of images line up?")
    st.caption("Each dot is one test image, placed by what the model's adaptation layer makes of it: blue are "
               "training-kind images, orange are images from where the model will be used. Where the colours mix, "
               "the model sees both kinds alike, so what it learnt on one carries over to the other.")
    baseline = run.status.get("source_only_run")
    baseline_dir = domain_map.baseline_of(run.path)
    after = domain_map.load_domain_map(run.path)
    before = domain_map.load_domain_map(baseline_dir) if baseline_dir else None
    if after is None or (baseline_dir and before is None):
        if not (run.path / "model.keras").is_file():
            st.info("This run has no saved model file, so there are no features to map.")
            return
        what = "this run and its source-only baseline" if baseline_dir else "this run"
        if not st.button("Draw the map", key="pred.domain_map", icon=":material/scatter_plot:",
                         help=f"Runs {what} over up to {domain_map.MAX_PER_DOMAIN} test images of each kind; it "
                              "takes a few seconds once, then it is kept with the run."):
            return
        try:
            with st.spinner("Computing the features of both kinds of images…"):
                maps = domain_map.before_after(run.path, model=None if after else model_of(run))
                after, before = maps["after"], maps["before"]
        except TransferLabError as exc:
            st.error(str(exc))
            return
    measured = (run.status.get("source_only_target_accuracy"), run.status.get("target_accuracy"))
    if before is not None:
        accuracy_pair_ui(*measured)
        left, right = st.columns(2)
        left.plotly_chart(domain_figure(before, "Before adaptation"), width="stretch", key="pred.domain_before")
        left.caption(f"The same network trained without adaptation (run {before['run']}).")
        right.plotly_chart(domain_figure(after, "After adaptation"), width="stretch", key="pred.domain_after")
        right.caption("This run.")
    else:
        st.plotly_chart(domain_figure(after, "This run"), width="stretch", key="pred.domain_after")
        if run.config.adapt_weight and not baseline:
            st.caption("Tick \"Also train without adaptation\" on the Model page to see the map before adaptation too.")
    st.info(domain_map.reading(after, before, measured if before is not None else None))
    if after["target_part"] == "adapt":
        st.caption("The target has no held-out labelled images, so its map shows the unlabelled images it adapted with.")
