"""Compare: every run in the workspace side by side."""

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import backbones, datasets, runs, strategies
from pages import _common


def run_row(r: runs.RunInfo, names: dict[str, str]) -> dict[str, Any]:
    """One table row: what was trained and how it went."""
    c, ev = r.config, r.evaluation or {}
    return {
        "run": r.id,
        "state": _common.STATE_WORDS.get(r.state, r.state),
        "dataset": names.get(c.dataset_id, c.dataset_id) if c else None,
        "backbone": backbones.get(c.backbone).label if c else None,
        "strategy": strategies.get(c.strategy).label if c else None,
        "epochs": sum(p.epochs for p in strategies.get(c.strategy).phases(c)) if c else None,
        "image size": c.image_size if c else None,
        "train seconds": r.status.get("train_seconds"),
        "test accuracy": r.status.get("test_accuracy", ev.get("accuracy")),
        "macro F1": ev.get("macro", {}).get("f1-score"),
    }


def table_ui(rows: list[dict[str, Any]]) -> None:
    st.dataframe(
        pd.DataFrame(rows), hide_index=True, width="stretch",
        column_config={
            "epochs": st.column_config.NumberColumn(
                help="Planned epochs over all phases; early stopping may end sooner."),
            "train seconds": st.column_config.NumberColumn(format="%.0f"),
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "macro F1": st.column_config.NumberColumn(format="percent",
                                                      help="F1 averaged over classes, each class counting the same."),
        },
    )


def page() -> None:
    ws: Path = _common.workspace()
    st.title("Compare runs")
    _common.reconcile_once(ws)
    found = runs.list_runs(ws)
    if not found:
        st.info("No runs yet. Train a model on the Train page, then compare runs here.")
        _common.link_to("pages/train.py", "Go to the Train page", ":material/monitoring:")
        return
    st.caption("Every run in this workspace, newest first. Test accuracy and F1 are measured on test images "
               "the run never trained on; runs on different datasets are not directly comparable.")
    names = {d["id"]: d["name"] for d in datasets.list_datasets(ws)}
    table_ui([run_row(r, names) for r in found])


_common.guarded(page)
