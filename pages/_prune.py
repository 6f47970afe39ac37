"""The Export page's "Make it smaller" section: pruning a finished run into a new, smaller run, and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.service import jobs
from core.ship import export, pruning
from core.store import runs
from pages import _common

FILE_LABELS = {"keras": "Keras model (model.keras)", **{f: export.FORMATS[f].label for f in export.TFLITE_IDS}}


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per file: gzipped size before and after pruning (what a download costs), and the pruned test accuracy.

    Six columns, so the last one is not cut off on a laptop screen."""
    rows = []
    for file_id, row in report["files"].items():
        base = report["parent_files"].get(file_id, {})
        rows.append({
            "file": FILE_LABELS.get(file_id, file_id),
            "before, gzipped (MB)": base.get("gzip_bytes", 0) / 2**20,
            "pruned, gzipped (MB)": row["gzip_bytes"] / 2**20,
            "share of before": row.get("gzip_vs_parent"),
            "test accuracy": row.get("accuracy", report["test_accuracy"]),
            "ms per image": row.get("ms_per_image", report.get("ms_per_image")),
        })
    return rows


def kind_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Sparsity reached per layer kind."""
    return [{"layer kind": kind, "layers": k["layers"], "weights": k["weights"], "share zero": k["sparsity"],
             "pruned": "yes" if k["prunable"] else "no (not prunable)"} for kind, k in report["kinds"].items()]


def sizes_figure(report: dict[str, Any]) -> go.Figure:
    """Gzipped size of each file before and after pruning (what a download costs)."""
    names = [FILE_LABELS.get(f, f) for f in report["files"]]
    before = [report["parent_files"].get(f, {}).get("gzip_bytes", 0) / 2**20 for f in report["files"]]
    after = [row["gzip_bytes"] / 2**20 for row in report["files"].values()]
    fig = go.Figure([go.Bar(name="before pruning", x=names, y=before),
                     go.Bar(name=f"pruned to {report['sparsity']:.0%}", x=names, y=after)])
    fig.update_layout(barmode="group", title="Gzipped size of each file", yaxis_title="MB", height=360,
                      margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.3))
    return fig


def report_ui(report: dict[str, Any]) -> None:
    """The measured effect of pruning: accuracy, parameters, sizes (table and chart), sparsity per layer kind."""
    cols = st.columns(3)
    cols[0].metric("Test accuracy", f"{report['test_accuracy']:.1%}", f"{report['change_points']:+.1f} points",
                   help=f"Against {report['parent_test_accuracy']:.1%} before pruning, on the same {report['n']} test images.")
    cols[1].metric("Weights that are zero", f"{report['sparsity_reached']:.0%}",
                   help="Of the convolution and dense weights, the ones pruning can thin out.")
    cols[2].metric("Non-zero parameters", f"{report['nonzero_parameters']:,}",
                   f"{report['nonzero_parameters'] - report['parent_nonzero_parameters']:,}", delta_color="inverse")
    st.dataframe(
        pd.DataFrame(report_rows(report)), hide_index=True, width="stretch", key="prune.table",
        column_config={
            **{c: st.column_config.NumberColumn(format="%.2f") for c in
               ("before, gzipped (MB)", "pruned, gzipped (MB)", "ms per image")},
            "share of before": st.column_config.NumberColumn(format="percent"),
            "test accuracy": st.column_config.NumberColumn(format="percent"),
        },
    )
    st.plotly_chart(sizes_figure(report), key="prune.sizes")
    st.dataframe(pd.DataFrame(kind_rows(report)), hide_index=True, width="stretch", key="prune.kinds",
                 column_config={"share zero": st.column_config.NumberColumn(format="percent")})
    st.caption(f"{report['not_prunable']} TensorFlow Lite files of a pruned run are converted with the sparsity "
               "optimisation and measured with LiteRT on the test images; the zeros pay off once a file is gzipped.")


def _latest_child(run: runs.RunInfo) -> runs.RunInfo | None:
    found = pruning.children(run.path)
    return found[0] if found else None


def child_ui(child: runs.RunInfo) -> None:
    """Where the newest pruning of this run stands; its report once measured."""
    status = runs.read_status(child.path)
    state = status.get("state", "unknown")
    report = pruning.cached_report(child.path)
    shared = f", {status['clusters']} shared values per layer" if status.get("clusters") else ""
    st.markdown(f"**Run {child.id}**: pruned to {status.get('sparsity', 0):.0%} over {status.get('prune_epochs')} "
                f"epoch(s){shared}, {_common.STATE_WORDS.get(state, state)}.")
    _common.verdict_ui(child.path)  # never green when pruning cost far more than "a point or so"
    if report is not None:
        report_ui(report)
        st.caption("It is a run of its own: choose it above to download its files, or see it on the Predictions and "
                   "Compare pages.")
    elif state in _common.ACTIVE_STATES or (state == "done" and runs.process_alive(status)):
        epochs = [e for e in runs.read_events(child.path) if e.get("type") == "epoch_end"]
        total = (status.get("prune_epochs") or 1) + (pruning.cluster_epochs(status["prune_epochs"])
                                                     if status.get("clusters") and status.get("prune_epochs") else 0)
        text = ("Converting to TensorFlow Lite and measuring every file…" if state == "done"
                else f"Fine-tuning while pruning{' and clustering' if status.get('clusters') else ''}: epoch "
                     f"{len(epochs)} of {total}")
        st.progress(min(1.0, len(epochs) / total), text=text)
    elif status.get("prune_report_error"):
        st.warning(status["prune_report_error"])
    elif state == "done":
        if st.button("Measure the pruned model", key="prune.measure", icon=":material/speed:",
                     help="Converts it to every TensorFlow Lite variant and measures sizes and test accuracy against "
                          "the run it was pruned from."):
            with st.spinner("Converting to TensorFlow Lite and measuring every file…"):
                pruning.measure(child.path)
            st.rerun()
    elif status.get("message"):
        st.warning(status["message"])


def section(run: runs.RunInfo, ws: Path) -> None:
    """Make it smaller: one sentence, when to use it, the sparsity, the job, the report."""
    st.subheader("Make it smaller")
    st.markdown("**Pruning** sets the smallest weights of the model's convolution and dense layers to zero while it "
                "is fine-tuned again on its own training images, so it learns to do without them. The result is a "
                "new run whose files compress to a fraction of their size.")
    st.caption("Use it when the model must travel: downloaded to phones or web pages, or stored on small devices, and "
               "some accuracy is an acceptable price. How much it costs depends on the sparsity and the fine-tuning "
               "epochs: on the flowers benchmark nothing at 0.5 or 0.75 with the defaults, often more with few "
               "epochs, few images or a higher sparsity; the result says how much, against the model before pruning. "
               "Combined with "
               "the int8 TensorFlow Lite file it is the smallest. It fine-tunes on images, so it takes longer than "
               "training on cached features.")
    if pruning.is_pruned(run.status):
        st.info(f"This run was pruned from run {run.status['pruned_from']} to {run.status.get('sparsity', 0):.0%} "
                "sparsity.")
        _common.verdict_ui(run.path)
        report = pruning.cached_report(run.path)
        if report is not None:
            report_ui(report)
        return
    if run.state != "done":
        st.caption("Only a finished, tested run can be pruned.")
        return
    child = _latest_child(run)
    busy = child is not None and _busy(child)
    cols = st.columns(3)
    sparsity = cols[0].slider(
        "Sparsity", 0.3, 0.9, pruning.DEFAULT_SPARSITY, 0.05, format="%.2f", key="prune.sparsity",
        help="The share of convolution and dense weights set to zero: 0.5 halves them. Higher is smaller but costs "
             "more accuracy; above 0.8 a small network usually loses a lot.")
    epochs = cols[1].number_input(
        "Fine-tuning epochs", *pruning.EPOCHS_RANGE, value=pruning.DEFAULT_EPOCHS, key="prune.epochs",
        help="Passes over the training images while the sparsity rises; the last one trains at the final sparsity. "
             "More epochs recover more accuracy.")
    clusters = cols[2].selectbox(
        "Shared values per layer", pruning.CLUSTER_CHOICES, pruning.CLUSTER_CHOICES.index(pruning.DEFAULT_CLUSTERS),
        format_func=lambda n: "none (no clustering)" if n == 0 else f"{n}", key="prune.clusters",
        help="Weight clustering after pruning: each pruned layer's remaining weights share this many values, so the "
             "int8 file gzips smaller still (on the flowers benchmark 0.68x of the unpruned file instead of 0.78x at "
             "0.5, for about 2 points of the int8 file's accuracy). Use it when the file must be small to download; "
             "none keeps every weight's own value.")
    if st.button("Prune into a new run", key="prune.start", type="primary", icon=":material/compress:",
                 disabled=busy, help="Runs in the background; you can leave the page and come back."):
        jobs.submit_prune(run.id, float(sparsity), int(epochs), ws, int(clusters))
        st.rerun()
    if child is not None:
        if busy:
            st.fragment(_live_ui, run_every=_common.POLL_EVERY)(child)
        else:
            child_ui(child)


def _busy(child: runs.RunInfo) -> bool:
    status = runs.read_status(child.path)
    state = status.get("state")
    return state in _common.ACTIVE_STATES or (
        state == "done" and pruning.cached_report(child.path) is None and runs.process_alive(status))


def _live_ui(child: runs.RunInfo) -> None:
    """child_ui redrawn every few seconds while the job works; a full rerun once it has ended stops the timer."""
    child_ui(child)
    if not _busy(child):
        st.rerun()
