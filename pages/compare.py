"""Compare: every run side by side; learning curves, trade-offs and the from-scratch check; re-run or delete."""

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import QuotaExceeded
from core.service import compare, jobs
from core.store import runs
from pages import _charts as charts
from pages import _common, _transfer

# Table columns: row key -> (title, column config). The order is the table's: what tells runs apart first
# (what was trained, then test accuracy, F1, size and speed), so the key columns fit at 1400 px.
COLUMNS: dict[str, tuple[str, Any]] = {
    "backbone": ("backbone", None),
    "strategy": ("strategy", None),
    "test_accuracy": ("test accuracy", st.column_config.NumberColumn(
        format="%.1f%%", width="medium",  # "small" cut the heading to "test accurac"
        help="Accuracy on test images the run never trained on or chose its best epoch by: the fair score.")),
    "macro_f1": ("F1", st.column_config.NumberColumn(
        format="%.1f%%", width="small",
        help="Macro F1: precision and recall in one number, averaged over the classes, each counting the same.")),
    "target_accuracy": ("target accuracy", st.column_config.NumberColumn(
        format="%.1f%%", width="medium",
        help="Domain adaptation: accuracy on held-out images from where the model will be used (the run's "
             "target dataset); empty for a run without one.")),
    "weights_mb": ("size (MB)", st.column_config.NumberColumn(
        format="%.1f", width="small",
        help="The model's weights as float32 numbers: what a deployed model weighs, the same for two runs of "
             "the same network. (The model.keras file is larger after training the backbone, because it also "
             "keeps the optimizer's state for every trained weight; see 'file (MB)'.)")),
    "ms_per_image": ("ms/image", st.column_config.NumberColumn(
        format="%.1f", width="small",
        help="Prediction time per image of the model alone, on this computer: a batch of decoded test images "
             "after a warm-up, the best of three timings. Runs evaluated while another one trained, or before "
             "this way of timing, can still read slower.")),
    "state": ("state", None),
    "dataset": ("dataset", None),
    "val_accuracy": ("validation accuracy", st.column_config.NumberColumn(
        format="%.1f%%", help="The best accuracy on the validation images over all epochs. The run chose its "
                               "best epoch by these images, so this flatters it; compare by test accuracy.")),
    "epochs": ("epochs", st.column_config.NumberColumn(
        help="Epochs trained over all phases (early stopping can end a run sooner); planned epochs for a run "
             "that recorded none.")),
    "train_seconds": ("training time (s)", st.column_config.NumberColumn(format="%.0f")),
    "auc": ("AUC", st.column_config.NumberColumn(
        format="%.3f", help="Area under the ROC curve (one class against the rest, averaged): 1 is perfect "
                            "ranking, 0.5 is guessing.")),
    "params": ("parameters", st.column_config.NumberColumn(
        format="compact", help="The weights: the numbers the model learned. More means a bigger, slower model.")),
    "size_mb": ("file (MB)", st.column_config.NumberColumn(
        format="%.1f", help="model.keras on disk: the weights plus the optimizer's state for the weights that "
                            "were trained (Adam keeps two numbers per trained weight), so a fine-tuned run's "
                            "file is larger than a frozen one of the same network.")),
    "transfer": ("vs. from scratch", st.column_config.TextColumn(
        help="For a run trained with a from-scratch baseline: whether the pretrained start helped (by best "
             "validation accuracy). The baseline is listed right below its run.")),
    "id": ("run", st.column_config.TextColumn(help="The run's id: when it started, then a random tail.")),
}
CURVE_METRICS = {
    "val_accuracy": "Validation accuracy",
    "val_loss": "Validation loss",
    "accuracy": "Training accuracy",
    "loss": "Training loss",
}
MAX_CURVES = 8  # without a selection, the newest runs' curves; more lines are unreadable


def transfer_text(row: dict[str, Any]) -> str:
    """The negative-transfer column: what the from-scratch comparison found for this row."""
    if row.get("baseline_of"):
        return f"baseline of …{row['baseline_of'][-6:]}"
    hurt, gain = row.get("transfer_hurt"), row.get("transfer_gain")
    if hurt is None:
        return "baseline still training" if row.get("baseline_run") else ""
    points = f" ({gain:+.1f} points)" if gain is not None else ""
    return ("⚠ transfer hurt" if hurt else "transfer helped") + points


def run_label(row: dict[str, Any]) -> str:
    return f"{row['backbone'] or '?'} / {row['strategy'] or '?'} …{row['id'][-6:]}"


def short_label(row: dict[str, Any]) -> str:
    """A point's label on the trade-off charts: short enough not to be clipped (the hover has the rest)."""
    return f"{row['backbone'] or '?'} …{row['id'][-4:]}"


# Shares shown as percentages with one decimal, as on the other pages (Streamlit's "percent" shows two).
PERCENT_KEYS = ("test_accuracy", "macro_f1", "val_accuracy", "target_accuracy")


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def weights_mb(row: dict[str, Any]) -> float | None:
    """The float32 weights in MB (4 bytes a parameter), the deployable size; None when they cannot be counted."""
    return round(row["params"] * 4 / 2**20, 3) if row.get("params") else None


def table_ui(rows: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    """The sortable run table; returns the rows the user selected."""
    # "target accuracy" only where a run was adapted to a target domain: the key columns keep their place.
    shown = {key: column for key, column in COLUMNS.items()
             if key != "target_accuracy" or any(row.get("target_accuracy") is not None for row in rows)}
    frame = pd.DataFrame([
        {title: (_common.STATE_WORDS.get(row["state"], row["state"]) if key == "state"
                 else transfer_text(row) if key == "transfer" else weights_mb(row) if key == "weights_mb"
                 else _percent(row.get(key)) if key in PERCENT_KEYS else row.get(key))
         for key, (title, _) in shown.items()}
        for row in rows
    ])
    text = [title for title, cfg in shown.values()
            if cfg is None or cfg.get("type_config", {}).get("type") == "text"]
    frame[text] = frame[text].fillna("-")  # a missing text reads "-", not the word "None"
    event = st.dataframe(
        frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row",
        key=f"compare.table.{version}",
        column_config={title: cfg for title, cfg in shown.values() if cfg is not None},
    )
    return [rows[i] for i in event.selection.rows if i < len(rows)]


def negative_transfer_ui(rows: list[dict[str, Any]]) -> None:
    """Say plainly where pretrained weights did worse than training from scratch."""
    by_id = {r["id"]: r for r in rows}
    for row in rows:
        if row.get("transfer_hurt") is True:
            base = by_id.get(row.get("baseline_run") or "")
            versus = (f" ({row['val_accuracy']:.0%} against {base['val_accuracy']:.0%} validation accuracy)"
                      if base and row.get("val_accuracy") is not None and base.get("val_accuracy") is not None else "")
            st.warning(
                f"Negative transfer in run {row['id']}: {row['backbone']} with pretrained weights did worse than the "
                f"same network trained from scratch{versus}. Your images may be unlike the photos it was pretrained "
                "on; try fine-tuning more layers, or keep the from-scratch model.", icon=":material/trending_down:")


def curves_ui(chosen: list[dict[str, Any]]) -> None:
    metric = st.selectbox("Curve", list(CURVE_METRICS), format_func=CURVE_METRICS.get, key="compare.metric",
                          help="Validation curves show how well each run did on images it was not trained on.")
    series = [(run_label(r), r["history"]) for r in chosen if r["history"]]
    if not series:
        st.caption("None of these runs recorded an epoch yet.")
        return
    st.plotly_chart(charts.overlaid_curves(series, metric, CURVE_METRICS[metric]), width="stretch",
                    key="compare.curves")


def scatter_ui(rows: list[dict[str, Any]], selected: set[str]) -> None:
    points = [{**r, "label": short_label(r), "hover": run_label(r), "selected": r["id"] in selected,
               "weights_mb": weights_mb(r) or r.get("size_mb")} for r in rows]
    if not any(r.get("test_accuracy") is not None for r in rows):
        st.caption("The trade-off charts appear once a run has been tested.")
        return
    left, right = st.columns(2)
    left.plotly_chart(charts.runs_scatter(points, "train_seconds", "test_accuracy", "training time (s)",
                                          "test accuracy", "Accuracy against training time"),
                      width="stretch", key="compare.time")
    right.plotly_chart(charts.runs_scatter(points, "weights_mb", "test_accuracy", "model size (MB)", "test accuracy",
                                           "Accuracy against model size", log_x=True),
                       width="stretch", key="compare.size")


def actions_ui(selected: list[dict[str, Any]], ws: Path, version: int) -> None:
    """Re-run the selected runs with their own configs, or delete them after a confirmation."""
    if not selected:
        st.caption("Select runs with the boxes at the left of the table to re-run or delete them.")
        return
    n = len(selected)
    words = f"{n} run" if n == 1 else f"{n} runs"
    left, right = st.columns(2)
    if left.button(f"Re-run {words} with the same settings", key="compare.rerun", icon=":material/replay:",
                   help="Trains each selected run again as a new run, with exactly the settings it was trained with."):
        new_ids, refused = [], None
        for r in selected:
            try:
                new_ids.append(jobs.submit(runs.load_config(r["path"]), ws))
            except QuotaExceeded as exc:  # a shared server's cap: say which runs did start
                refused = str(exc)
                break
        if new_ids:
            _common.remember_run(new_ids[-1])
            st.session_state["compare.flash"] = f"Started {len(new_ids)} new run(s): {', '.join(new_ids)}."
        if refused:
            st.session_state["compare.refused"] = f"{n - len(new_ids)} of the {n} runs did not start. {refused}"
        st.rerun()
    busy = [r["id"] for r in selected if r["state"] in _common.ACTIVE_STATES]
    confirm = right.checkbox(f"Yes, delete {words} and all their files", key=f"compare.confirm.{version}",
                             help="Deleting cannot be undone: the model, its exports and its results go.")
    if busy:
        right.caption("Runs still waiting or training cannot be deleted; cancel them on the Train page first.")
    if right.button(f"Delete {words}", key="compare.delete", icon=":material/delete:", disabled=not confirm or bool(busy),
                    help="Deletes the selected runs for good; tick the box above first to confirm."):
        for r in selected:
            runs.delete_run(r["id"], ws)
            if st.session_state.get("run_id") == r["id"]:
                _common.forget_run()
        # A fresh table widget: the old selection's row numbers would point at other runs now.
        st.session_state["compare.version"] = version + 1
        st.session_state["compare.flash"] = f"Deleted {words}."
        st.rerun()


def page() -> None:
    ws: Path = _common.workspace()
    st.title("Compare runs")
    _common.reconcile_runs(ws)
    flash = st.session_state.pop("compare.flash", None)
    if flash:
        st.success(flash)
    refused = st.session_state.pop("compare.refused", None)
    if refused:
        st.error(refused)
    rows = compare.table(ws)
    if not rows:
        st.info("No runs yet. Train a model on the Train page, then compare runs here.")
        _common.link_to("pages/train.py", "Go to the Train page", ":material/monitoring:")
        return
    st.caption("Every run in this workspace, newest first; click a column title to sort. Test accuracy and F1 are "
               "measured on test images the run never trained on; runs on different datasets are not directly "
               "comparable.")
    version = st.session_state.get("compare.version", 0)
    selected = table_ui(rows, version)
    negative_transfer_ui(rows)
    _transfer.distill_compare_ui(compare.distillations(ws))
    actions_ui(selected, ws, version)
    st.subheader("Learning curves")
    chosen = selected or [r for r in rows if r["history"]][:MAX_CURVES]
    if not selected:
        st.caption(f"The newest {min(len(chosen), MAX_CURVES)} runs; select rows in the table to choose which.")
    curves_ui(chosen)
    st.subheader("Trade-offs")
    scatter_ui(rows, {r["id"] for r in selected})


_common.guarded(page)
