"""The Search page's parts: the learning-rate finder and hyperparameter studies (core.service.studies).

A study runs as a background job (its own process, one slot of the training queue), so this page
only reads the study's storage: it can be left, reloaded (the study id is in the URL) and reattached.
Nothing here imports TensorFlow; the learning-rate finder runs as a job (core.service.jobs): its own process,
in the training queue, counted by a shared server's caps; the page submits it and polls.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.errors import StudyError, TransferLabError
from core.service import jobs, studies
from core.spec import backbones, strategies
from core.spec.config import RunConfig, preset
from core.store import datasets
from pages import _common, _weights

K = "search."
POLL_EVERY = 2.0
ACTIVE = ("queued", "running")
STUDY_WORDS = {"done": "done", "queued": "waiting to start", "running": "running", "failed": "failed",
               "cancelled": "cancelled", "interrupted": "interrupted", "none": "not started"}
STATE_WORDS = {"complete": "finished", "pruned": "stopped early (looked hopeless)", "failed": "failed", "running": "training",
               "waiting": "waiting"}


# ---------------------------------------------------------------- the settings the page starts from


def base_config(info: dict[str, Any]) -> tuple[RunConfig, str]:
    """The Model page's settings for this dataset, else the quick preset; and where they came from, in words."""
    text = st.session_state.get("run_config")
    if text:
        config = RunConfig.from_json(text)
        if config.dataset_id != info["id"]:
            config = config.with_changes(dataset_id=info["id"]).validate()
        return config, "your settings from the Model page"
    return preset("quick", info["id"]), "the Quick preset (choose other settings on the Model page)"


def use_config(config: RunConfig, what: str) -> None:
    """Make a config the Model page's settings: its widgets are filled from it on the next visit."""
    st.session_state["run_config"] = config.to_json()
    for key in [k for k in st.session_state if str(k).startswith(("model.", "model_ui."))]:
        del st.session_state[key]
    st.session_state[K + "used"] = what


def used_notice() -> None:
    what = st.session_state.pop(K + "used", None)
    if what:
        st.success(f"{what} The Model and Train pages now use these settings.")
        _common.link_to("pages/model.py", "See them on the Model page", ":material/tune:")


# ---------------------------------------------------------------- the learning-rate finder


def lr_chart(result: dict[str, Any]) -> go.Figure:
    """Smoothed loss against learning rate (log axis), the raw losses faint, the suggestion marked."""
    fig = go.Figure()
    fig.add_scatter(x=result["rates"], y=result["losses"], mode="lines", name="loss of each batch",
                    line={"width": 1, "color": "rgba(120,120,120,0.4)"})
    fig.add_scatter(x=result["rates"], y=result["smoothed"], mode="lines", name="smoothed loss")
    fig.add_scatter(x=[result["suggestion"]], y=[result["suggestion_loss"]], mode="markers", name="suggestion",
                    marker={"size": 12, "symbol": "star", "color": "crimson"})
    fig.add_vline(x=result["suggestion"], line_dash="dot", line_color="crimson")
    finite = [v for v in result["smoothed"] if isinstance(v, (int, float)) and math.isfinite(v)]
    top = min(max(finite), 4 * min(finite)) if finite else None
    # Powers of ten ("1e-7"), not SI prefixes ("100n", "1μ"), which read as nonsense for a learning rate.
    fig.update_layout(xaxis={"type": "log", "title": "learning rate", "exponentformat": "e", "showexponent": "all",
                             "dtick": 1}, yaxis={"title": "training loss",
                      "range": [0, top * 1.05] if top else None}, height=380, margin={"t": 30},
                      legend={"orientation": "h"})
    return fig


def _lr_job_ui(job: dict[str, str], ws: Path) -> None:
    """The finder's job while it waits or runs; its curve (or its sentence) once it ends."""
    try:
        state = jobs.lr_find_state(job["id"], ws)
    except TransferLabError as exc:
        state = {"state": "failed", "message": str(exc)}
    if state["state"] in ACTIVE:
        if state.get("queue_position"):
            st.info(f"Waiting for another training run to finish: the learning-rate finder is number "
                    f"{state['queue_position']} in line.")
        else:
            st.info("Trying learning rates from 1e-7 to 1…", icon=":material/hourglass_top:")
        return
    st.session_state.pop(K + "lr.job", None)
    if state["state"] == "done":
        st.session_state[K + "lr"] = {"config": job["config"], "result": state["result"]}
    else:
        st.session_state[K + "lr.error"] = state.get("message") or "The learning-rate finder did not finish; try again."
    st.rerun()


def lr_finder_ui(config: RunConfig, ws: Path) -> None:
    """"Find a good learning rate": the finder's curve and a button that uses its suggestion."""
    st.subheader("Find a good learning rate")
    st.caption("A short trial run of about 100 batches in which the learning rate grows from 0.0000001 to 1. "
               "The loss first stays flat (too small a rate), then falls, then shoots up (too large). The suggestion "
               "sits where the loss falls fastest. Use it when you do not know which rate to pick; "
               "it takes a few seconds with a frozen backbone, whose features are computed once and reused.")
    if st.button("Find a good learning rate", key=K + "lr.find", icon=":material/search:"):
        # A job like a run (core.service.jobs): it waits its turn in the training queue and counts in the caps.
        try:
            st.session_state[K + "lr.job"] = {"id": jobs.submit_lr_find(config, ws), "config": config.to_json()}
        except TransferLabError as exc:
            st.error(str(exc))
        st.session_state.pop(K + "lr", None)
    job = st.session_state.get(K + "lr.job")
    if job:
        st.fragment(_lr_job_ui, run_every=POLL_EVERY)(job, ws)
        return
    error = st.session_state.pop(K + "lr.error", None)
    if error:
        st.error(error)
    found = st.session_state.get(K + "lr")
    if not found:
        return
    result = found["result"]
    st.plotly_chart(lr_chart(result), width="stretch", key=K + "lr.chart")
    stopped = " It stopped early, when the loss passed four times its lowest value." if result["stopped_early"] else ""
    st.markdown(f"**Suggested learning rate: {result['suggestion']:.1e}** (from {result['batches']} batches"
                f"{', on cached features' if result['on_features'] else ''}).{stopped}")
    if st.button(f"Use {result['suggestion']:.1e} as the learning rate", key=K + "lr.use", icon=":material/check:"):
        start = RunConfig.from_json(found["config"])
        use_config(start.with_changes(learning_rate=result["suggestion"]).validate(),
                   f"The learning rate is now {result['suggestion']:.1e}.")
        st.rerun()


# ---------------------------------------------------------------- a new study


def space_ui(config: RunConfig) -> tuple[list[str], list[str]]:
    """Checkboxes for what to search (only settings the strategy uses), and the backbones to choose among."""
    st.markdown("**What to search.** The settings you do not tick stay as they are.")
    chosen = []
    cols = st.columns(2)
    relevant = [p for p in studies.CATALOGUE.values() if studies.relevant(config, p)]
    for i, p in enumerate(relevant):
        if cols[i % 2].checkbox(p.label, value=p.name in studies.HEAD_SEARCH, key=K + "p." + p.name,
                                help=f"{p.words[0].upper()}{p.words[1:]}; tries {p.describe()}."):
            chosen.append(p.name)
    picked: list[str] = []
    if cols[len(relevant) % 2].checkbox("Backbone", key=K + "p.backbone",
                                        help="Also try other pretrained networks under the head."):
        cached = studies.cached_backbones(config.image_size)
        options = sorted(set(cached) | {config.backbone})
        picked = st.multiselect("Backbones to try", options, default=options, key=K + "backbones",
                                format_func=lambda b: backbones.get(b).label,
                                help="Those whose ImageNet weights are on this computer; each is tried at "
                                     f"{config.image_size} px.")
        chosen.append("backbone")
    return chosen, picked


def budget_ui() -> tuple[int, float | None]:
    left, right = st.columns(2)
    trials = left.number_input("Trials", min_value=1, max_value=500, value=studies.DEFAULT_TRIALS, step=1,
                               key=K + "trials", help="How many settings to try; each trial is a training run.")
    minutes = right.number_input("Time limit in minutes (0: none)", min_value=0, max_value=24 * 60, value=0, step=5,
                                 key=K + "minutes", help="No new trial starts after this time; the one running finishes.")
    return int(trials), (float(minutes) or None)


def new_study_ui(config: RunConfig, source: str, ws: Path, busy: list[str]) -> None:
    st.subheader("Search for good settings")
    spec, strategy = backbones.get(config.backbone), strategies.get(config.strategy)
    st.caption(f"TransferLab trains many short runs, each with other settings, and keeps the one with the lowest "
               f"validation loss. It starts from {source}: {spec.label}, {strategy.label}, {config.image_size} px. "
               "Runs that look hopeless after an epoch are stopped early to save time; with a frozen backbone "
               "every trial reuses the same cached features, so a search costs little more than one run. "
               "Use it when you are unsure about the learning rate, dropout or the size of the head.")
    _weights.outlook_ui(config)  # offline, what the trials really train (as on the Model and Train pages)
    search, picked = space_ui(config)
    trials, minutes = budget_ui()
    if busy:
        st.caption(f"{busy[0]} is still training; start the next when it has finished or been cancelled (this page "
                   "frees the button by itself).")
    if st.button("Start the search", type="primary", key=K + "start", icon=":material/play_arrow:",
                 disabled=bool(busy)):
        names = [n for n in search if n != "backbone"] + (["backbone"] if picked else [])
        if "backbone" in search and len(picked) < 2:
            raise StudyError("Tick at least two backbones to search among them, or untick Backbone.")
        study_id = studies.submit(config, ws, trials=trials, minutes=minutes, search=names, backbone_ids=picked or None)
        remember_study(study_id)
        st.rerun()


# ---------------------------------------------------------------- a study's progress and results


def remember_study(study_id: str) -> None:
    st.session_state[K + "study"] = study_id
    st.query_params["study"] = study_id


def active_study(ws: Path) -> str | None:
    """The study shown: from the session, else from the URL after a reload; None if it is gone."""
    study_id = st.session_state.get(K + "study") or st.query_params.get("study")
    if not study_id:
        return None
    try:
        studies.study_path(study_id, ws)
    except StudyError:
        return None
    remember_study(study_id)
    return study_id


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.2e}" if abs(value) < 1e-2 and value else f"{value:.3g}"
    return str(value)


def settings_words(params: dict[str, Any]) -> str:
    """A trial's settings in the page's words ("Dropout 0.2, Hidden units none"), not parameter names."""
    def value(name: str, v: Any) -> str:
        if name == "backbone":
            return backbones.get(v).label
        if name == "hidden_units" and v == 0:
            return "none"
        return _fmt(v)

    return ", ".join(f"{studies.CATALOGUE[k].label if k in studies.CATALOGUE else k} {value(k, v)}"
                     for k, v in params.items())


def trials_table(info: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for t in info["trials"]:
        state = STATE_WORDS.get(t["state"], t["state"])
        if t["pruned_epoch"]:
            state += f" after epoch {t['pruned_epoch']}"
        rows.append({
            "trial": t["number"], "state": state,
            "settings": settings_words(t["params"]),
            "validation accuracy": t["val_accuracy"], "validation loss": t["value"],
            "test accuracy": t["test_accuracy"], "seconds": t["seconds"], "run": t["run_id"],
            "ran on": t["worker"] or "",  # computer:process of the worker that ran it (several machines can share)
        })
    return pd.DataFrame(rows)


def progress_ui(study_id: str, ws: Path) -> None:
    """The study's state, its trials so far and the Cancel button; polls while the job runs."""
    info = studies.show(study_id, ws)
    job = info["job"]
    counts = info["counts"]
    done = counts["complete"] + counts["pruned"]
    if job["state"] in ACTIVE:
        if job.get("queue_position"):
            st.info(f"Waiting for another training run to finish: this search is number {job['queue_position']} in line.")
        elif job["state"] == "queued":
            st.info("Getting ready: starting TensorFlow and loading the images.")
        budget = info["trials_budget"]
        if budget:
            st.progress(min(1.0, done / budget),
                        text=f"{done} of {budget} trials finished ({counts['pruned']} stopped early)")
        if st.button("Cancel the search", key=K + "cancel", icon=":material/stop:",
                     help="The trial in progress stops after its current batch; no new trial starts."):
            studies.cancel(study_id, ws)
            st.session_state[K + "cancelling"] = study_id
        if st.session_state.get(K + "cancelling") == study_id:
            st.caption("Cancelling: the search stops after the current batch.")
    elif job["state"] != "none":
        message = job.get("message") or ""
        (st.success if job["state"] == "done" else st.warning)(
            f"The search is {STUDY_WORDS.get(job['state'], job['state'])}: {done} trials finished "
            f"({counts['pruned']} stopped early). {message}")
        if job["state"] in ("interrupted", "cancelled", "failed"):
            if st.button("Resume the search", key=K + "resume", icon=":material/play_arrow:",
                         help="Continues with the trials it had; finished trials are not repeated."):
                studies.start_job(study_id, ws)
                st.rerun()
    if info["trials"]:
        st.dataframe(trials_table(info), hide_index=True, width="stretch", key=K + "table",
                     column_config={"validation accuracy": st.column_config.NumberColumn(format="percent"),
                                    "test accuracy": st.column_config.NumberColumn(format="percent"),
                                    "validation loss": st.column_config.NumberColumn(format="%.4f"),
                                    "ran on": st.column_config.TextColumn(
                                        help="The computer (and its process number) that ran the trial: computers "
                                             "sharing one search through a database each run some.")})
    else:
        st.caption("No trial has started yet.")


def results_ui(study_id: str, ws: Path) -> None:
    """The best trial, "Use the best settings", and Optuna's own figures."""
    info = studies.show(study_id, ws)
    best = info["best"]
    if best is None:
        return
    acc = f", validation accuracy {best['val_accuracy']:.1%}" if best["val_accuracy"] is not None else ""
    st.markdown(f"**Best so far: trial {best['number']}** (run `{best['run_id']}`): validation loss "
                f"{best['value']:.4f}{acc}; {settings_words(best['params'])}.")
    why_best_ui(info["trials"], best)
    st.caption("Every trial is a run: open it on the Predictions, Compare or Export page like any other.")
    if st.button("Use the best settings", type="primary", key=K + "use_best", icon=":material/check:",
                 help="Fills the Model page with the best trial's settings, exactly as it trained."):
        use_config(studies.best_config(study_id, ws), f"The settings of trial {best['number']} are in place.")
        st.rerun()
    figures = studies.figures(study_id, ws)
    if not figures:
        return
    st.markdown("**What the search learned**")
    tabs = st.tabs([studies.FIGURES[k][1] for k in figures])
    for tab, (key, fig) in zip(tabs, figures.items()):
        # Our words instead of Optuna's English titles; trials are whole numbers on the history's axis.
        fig.update_layout(title=studies.FIGURES[key][1])
        if key == "history":
            fig.update_xaxes(dtick=1, title="trial")
        with tab:
            st.plotly_chart(fig, width="stretch", key=K + "fig." + key)


def why_best_ui(trials: list[dict[str, Any]], best: dict[str, Any]) -> None:
    """Why the best trial is best when another one reached a higher validation accuracy."""
    higher = [t for t in trials if t["state"] == "complete" and t["value"] is not None and t["val_accuracy"] is not None
              and best["val_accuracy"] is not None and t["val_accuracy"] > best["val_accuracy"]]
    if not higher:
        return
    top = max(higher, key=lambda t: t["val_accuracy"])
    st.caption(f"Trial {top['number']} reached a higher validation accuracy ({top['val_accuracy']:.1%}) but a higher "
               f"validation loss ({top['value']:.4f}). The search ranks by loss: it counts how sure the model is of "
               "every answer, while accuracy counts only right or wrong, so on few validation images the loss is the "
               "steadier guide. Open both trials on the Compare page if you prefer the other one.")


def study_picker(ws: Path, current: str | None) -> str | None:
    found = studies.list_studies(ws)
    if not found:
        return current
    ids = [s["id"] for s in found]
    by_id = {s["id"]: s for s in found}
    index = ids.index(current) if current in ids else 0
    names = {d["id"]: d["name"] for d in datasets.list_datasets(ws)}
    # No job state in the label: it would go stale while the search runs (its state shows below, polled).
    chosen = st.selectbox(
        "Searches in this workspace", ids, index=index, key=K + "pick",
        format_func=lambda s: f"{s} · on {names.get(by_id[s]['dataset_id'], by_id[s]['dataset_id'])} · searching "
                              + ", ".join(studies.CATALOGUE[p].label if p in studies.CATALOGUE else p
                                          for p in by_id[s]["space"]))
    if chosen != current:
        remember_study(chosen)
    return chosen


def studies_ui(ws: Path, busy_before: list[str]) -> None:
    """The list of searches and the chosen one's trials, redrawn every few seconds while anything trains; once what
    trains has changed (a search or a run ended, a new one began), the whole page is redrawn, freeing Start."""
    current = study_picker(ws, active_study(ws))
    if current is not None:
        st.divider()
        st.subheader(f"Search {current}")
        progress_ui(current, ws)
        results_ui(current, ws)
    if st.session_state.get(K + "poll") is not None and _common.busy_work(ws) != busy_before:
        st.rerun()


def page(ws: Path) -> None:
    st.title("Search")
    st.caption("Let TransferLab find good settings for you: a learning rate in seconds, or a search that tries many "
               "settings and keeps the best.")
    used_notice()
    info = _common.selected_dataset(ws)
    if info is None:
        _common.no_dataset_guidance()
        return
    _common.hand_ui(info)
    _common.reconcile_runs(ws)
    config, source = base_config(info)
    lr_finder_ui(config, ws)
    st.divider()
    busy = _common.busy_work(ws)
    new_study_ui(config, source, ws, busy)
    st.session_state[K + "poll"] = POLL_EVERY if busy else None
    st.fragment(studies_ui, run_every=st.session_state[K + "poll"])(ws, busy)
