"""Transfer across architectures on the pages: the layer_transfer and distill controls of the Model page (with
the transfer map as a table and one sentence), and the teacher / student alone / distilled table of Compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.engine import distill, transfer
from core.errors import TransferLabError
from core.spec import backbones, strategies
from core.store import sources
from pages import _common

K = "model_ui.transfer."  # this module's widget keys (not RunConfig fields: the Model page builds those)


@st.cache_data(show_spinner="Matching the two networks' layers…", max_entries=16)
def _map(source: str, target: str, ws: str, image_size: int) -> dict[str, Any]:
    return transfer.transfer_map(source, target, Path(ws), image_size)


def transfer_map_ui(source: str, target: str, ws: Path, image_size: int) -> bool:
    """The transfer map as one sentence and a table, on request (it builds both networks); False when nothing
    is shared (the sentence says what to do)."""
    shown = st.session_state.setdefault(K + "maps", set())
    key = (source, target, image_size)
    if key not in shown:
        st.caption("Before training, see which layers carry over: both networks are built (random weights, a few "
                   "seconds) and their layers matched by name and weight shapes.")
        if not st.button("Show which layers carry over", key=K + "show", icon=":material/account_tree:"):
            return True  # training refuses with the same sentence if nothing is shared
        shown.add(key)
    try:
        report = _map(source, target, str(ws), image_size)
    except TransferLabError as exc:
        st.error(str(exc))
        return False
    if not report["shared"]:
        st.warning(report["sentence"])
        return False
    st.info(report["sentence"])
    rows = [{"layer": r["name"], "type": r["type"], "parameters": r["params"],
             "": "shared (copied)" if r["shared"] else "difference (trains first)",
             "why": r.get("why", "")} for r in report["shared"] + report["difference"]]
    with st.expander(f"The layers: {report['shared_layers']} shared, {report['difference_layers']} difference "
                     f"({report['shared_params']:,} of {report['total_params']:,} parameters transfer)"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    return True


def _layer_transfer_ui(spec: backbones.BackboneSpec, image_size: int, ws: Path) -> dict[str, Any] | None:
    found = sources.run_sources(ws)
    kind = st.radio("Copy layers from", ("run", "backbone"), key=K + "kind", horizontal=True,
                    format_func={"run": "a model I trained earlier", "backbone": "a backbone of the list"}.get,
                    help="An earlier run gives its trained layers; a backbone of the list gives its ImageNet weights "
                         "(or random ones offline), to see what carries over.")
    if kind == "run":
        if not found:
            st.warning("There is no finished run in this workspace to copy layers from yet; train one first, or "
                       "copy from a backbone of the list.")
            return None
        ordered, label = _common.run_choices([s.run_id for s in found], ws)
        run_id = st.selectbox("Earlier run", ordered, key=K + "run", format_func=label,
                              help="Runs of the dataset in hand come first, the most accurate first.")
        source, values = run_id, {"source_run": run_id, "source_backbone": ""}
    else:
        layered = [b for b in backbones.ids() if not backbones.is_hub(b)]
        source = st.selectbox("Backbone to copy from", layered, key=K + "backbone",
                              format_func=lambda b: backbones.get(b).label)
        values = {"source_run": "", "source_backbone": source}
    if not transfer_map_ui(source, spec.id, ws, image_size):
        return None
    return values


def _distill_ui(classes: list[str], ws: Path) -> dict[str, Any] | None:
    found = distill.teachers(ws, classes)
    if not found:
        st.warning("No finished run of this workspace was trained on exactly these classes, so there is no teacher "
                   "yet; train an accurate model on this dataset first (any backbone), then come back.")
        return None
    ordered, label = _common.run_choices([t["run_id"] for t in found], ws)
    teacher = st.selectbox("Teacher (a finished run on these classes)", ordered, key=K + "teacher", format_func=label,
                           help="Usually your most accurate model (listed first); the backbone below is the student "
                                "it teaches.")
    left, right = st.columns(2)
    temperature = left.slider("Temperature", 1.0, 10.0, 4.0, 0.5, key=K + "temperature",
                              help="How much the teacher's answers are softened: higher shows the student more of "
                                   "what the teacher thinks about the other classes. 4 is the usual choice.")
    weight = right.slider("Teacher's share of the lesson", 0.0, 1.0, 0.7, 0.05, key=K + "weight",
                          help="0.7: the student learns 70 % from the teacher's softened answers and 30 % from the "
                               "true labels.")
    alone = st.checkbox("Also train the same student without the teacher, to see what the teacher adds",
                        key=K + "alone", help="Same budget; the Compare page then shows teacher, student alone and "
                                              "distilled student side by side.")
    return {"source_run": teacher, "source_backbone": "", "temperature": temperature, "distill_weight": weight,
            "compare_student_alone": alone}


def strategy_controls(strategy: strategies.Strategy, spec: backbones.BackboneSpec, image_size: int,
                      classes: list[str], ws: Path) -> dict[str, Any] | None:
    """The Model page's settings for layer_transfer and distill ({} for other strategies); None when the
    strategy cannot run yet (the reason is shown)."""
    # Keyed by the strategy's training method (core.engine.methods), not its name.
    controls = {"transfer": lambda: _layer_transfer_ui(spec, image_size, ws),
                "distillation": lambda: _distill_ui(classes, ws)}.get(strategy.method)
    if controls is None:
        return {}
    st.subheader("Where the knowledge comes from")
    return controls()


ROLES = {"teacher": "teacher", "student_alone": "student alone", "distilled": "distilled student"}


def distill_compare_ui(found: list[dict[str, Any]]) -> None:
    """Compare page: for each distilled run, teacher / student alone / distilled side by side, and the verdict."""
    if not found:
        return
    st.subheader("Distillation: teacher and student")
    for report in found:
        st.markdown(f"Run `{report['run']}`: {report['verdict']}")
        st.dataframe(pd.DataFrame([
            {"": ROLES[r["role"]], "run": r["run"], "backbone": r["label"], "test accuracy": r["test_accuracy"],
             "parameters": r["params"], "size (MB, float32)": r["size_mb"], "ms per image": r["ms_per_image"]}
            for r in report["rows"]]), hide_index=True, width="stretch",
            column_config={"test accuracy": st.column_config.NumberColumn(format="percent")})
