"""Train: start a training job in the background and watch it live.

The job runs in its own process (core.jobs); this page only reads the run folder, so switching
pages or reloading the browser never stops it. The run id lives in the session and in the URL.
"""

from pathlib import Path
from typing import Any

import streamlit as st

from core.data import health
from core.errors import DatasetError, RunNotFound, TransferLabError
from core.service import jobs
from core.spec import backbones, strategies
from core.spec.config import RunConfig, preset
from core.store import runs
from pages import _charts as charts
from pages import _common, _kinds, _weights

LOG_LINES = 12


def config_ui(info: dict[str, Any], ws: Path) -> tuple[RunConfig, bool]:
    """The settings from the Model page (applied to the dataset in hand), else the quick preset, shown briefly; and
    whether it may start (a run that would start from random weights offline waits for the person's choice)."""
    text = _common.model_settings(ws)
    if text:
        config = RunConfig.from_json(text)
        if config.dataset_id != info["id"]:
            config = config.with_changes(dataset_id=info["id"]).validate()
        source = "your settings from the Model page"
    else:
        config = preset("quick", info["id"], kind=_kinds.of_dataset(info).id)  # the quick preset of its kind
        source = "the Quick preset; choose other settings on the Model page"
    spec, strategy = backbones.get(config.backbone), strategies.get(config.strategy)
    epochs = sum(phase.epochs for phase in strategy.phases(config))
    st.markdown(
        f"**Dataset:** {info['name']} · **Backbone:** {spec.label} · **Strategy:** {strategy.label} · "
        f"**Epochs:** up to {epochs} · **Image size:** {config.image_size} px"
    )
    st.caption(f"Using {source}. {strategies.speed_note(config)}")
    ready = _weights.outlook_ui(config, confirm_key="train.random_ok")
    try:  # said before the click, with the button off, rather than after it
        health.check_trainable(info, config.backbone)
    except DatasetError as exc:
        st.warning(f"{exc} Add them on the Data page, then come back.", icon=":material/block:")
        ready = False
    if config.compare_scratch:
        st.caption("A small network trained from scratch on the same images follows, to check that transfer helped.")
    _common.link_to("pages/model.py", "Change the settings", ":material/tune:")
    return config, ready


def trained_ui(run_dir: Path) -> None:
    """The backbone this run really trains: its config.json is rewritten when training falls back to another."""
    try:
        config = RunConfig.from_json((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, TransferLabError):
        return
    spec, strategy = backbones.get(config.backbone), strategies.get(config.strategy)
    st.markdown(f"Trains **{spec.label}** ({_common.mid_sentence(strategy.label)}, {config.image_size} px).")


def start_ui(busy: str | None, ready: bool = True) -> bool:
    """The Start button, switched off while a run is training or the settings wait for a choice; True when clicked."""
    if busy:
        st.caption(f"{busy} is still training. One run at a time keeps this computer responsive; "
                   "start the next when it has finished or been cancelled (this page frees the button by itself).")
    return st.button("Start training", type="primary", key="train.start", disabled=bool(busy) or not ready,
                     icon=":material/play_arrow:",
                     help="Trains a new model with the settings above. It runs in the background: you can switch "
                          "pages and come back" + (" or reload." if _common.reload_keeps_work() else "."))


def epoch_line(h: dict[str, Any]) -> str:
    """One epoch of the history in words."""
    def pct(key: str) -> str:
        return f"{h[key]:.1%}" if isinstance(h.get(key), (int, float)) else "-"

    def num(key: str) -> str:
        return f"{h[key]:.3f}" if isinstance(h.get(key), (int, float)) else "-"

    return (f"{charts.phase_short(h['phase']):<14} epoch {h['epoch']:>3}: loss {num('loss')}, accuracy {pct('accuracy')} | "
            f"validation loss {num('val_loss')}, validation accuracy {pct('val_accuracy')} ({h['seconds']:.1f} s)")


def live_ui(p: dict[str, Any], run_id: str, ws: Path) -> None:
    """Phase, progress bars and the Cancel button of a queued or running job."""
    phase = p["phase"]
    if p["runs_ahead"]:
        ahead = p["runs_ahead"]
        st.info(f"Waiting for {ahead} other training run{'s' if ahead != 1 else ''} to finish first: this computer "
                "trains one at a time. This run starts by itself; you can leave this page.")
    elif p["state"] == "queued" or phase is None:
        st.info("Getting ready: starting TensorFlow, loading the images and the backbone. "
                "This takes a few seconds, longer when weights are downloaded.")
    else:
        words = _common.PHASE_WORDS.get(phase["phase"], phase["phase"])
        st.markdown(f"**Phase {phase['index']} of {phase['phases']}:** {words} "
                    f"({phase['trainable_params']:,} weights being trained).")
    done = len(p["history"])
    eta, pending = p["eta_seconds"], p.get("eta_pending_epochs", 0)
    left = ""
    if eta is not None and pending:
        later = f"{pending} epoch{'s' if pending != 1 else ''} of later phases"
        left = (f", about {_duration(eta)} left before {later}, which are timed once they start" if eta >= 1
                else f", {later} to go (timed once they start)")
    elif eta is not None:
        left = f", about {_duration(eta)} left"
    st.progress(p["fraction"], text=f"Overall: {done} epoch{'s' if done != 1 else ''} finished{left}")
    batch = p["last_batch"]
    if batch:
        st.progress(p["epoch_fraction"],
                    text=f"Current epoch {batch['epoch']}: batch {batch['batch']} of {batch['steps']}")
    if st.button("Cancel training", key="train.cancel", icon=":material/stop:",
                 help="Stops after the current batch (group of images) and keeps the best model so far."):
        jobs.cancel(run_id, ws)
        st.session_state["train.cancelling"] = run_id
    if st.session_state.get("train.cancelling") == run_id:
        st.caption("Cancelling: the run stops after the current batch.")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def feature_pass_ui(p: dict[str, Any]) -> None:
    """What the feature cache did, in a sentence."""
    fp = p["feature_pass"]
    if not fp:
        return
    reused = fp["images"] - fp["computed"]
    views = f" ({fp['views']} augmented copies each)" if fp["views"] else ""
    text = f"Backbone features of {fp['images']} images{views} were computed once in {fp['seconds']:.1f} s"
    if reused:
        text += f"; {reused} came ready from earlier runs"
    st.caption(text + ". The classifier then trains on them, so each epoch takes a moment.")


# The status fields naming a run's companion (trained by the same job right after it), and what it is.
COMPANIONS = {
    "baseline_run": "the same network trained from scratch, to check that transfer helped",
    "source_only_run": "the same network without adaptation, to check that adaptation helped",
    "student_alone_run": "the student trained alone, to check that the teacher helped",
}


def companion_ui(status: dict[str, Any], busy: list[str]) -> None:
    """A companion run still training, in a sentence; the verdict compares the two once both have finished."""
    for field, words in COMPANIONS.items():
        if status.get(field) in busy:
            st.info(f"Run {status[field]} is training now: {words}. The verdict below compares the two when it "
                    "has finished, and the next run can start then.")
    if status.get("baseline_note"):
        st.caption(status["baseline_note"])


def result_ui(p: dict[str, Any], run_id: str, ws: Path) -> None:
    """How a finished run ended, in a sentence; interrupted or cancelled runs can resume."""
    status, state = p["status"], p["state"]
    if state == "done":
        accuracy, seconds = status.get("test_accuracy"), status.get("train_seconds")
        text = "Training finished" + (f" in {seconds:.0f} s." if seconds is not None else ".")
        if accuracy is not None:
            text += " Accuracy is measured on test images the model never saw during training."
        st.markdown(text)
        _common.verdict_ui(runs.run_path(run_id, ws))
        _common.link_to("pages/predictions.py", "See the results and try your own images", ":material/fact_check:")
    elif state == "failed":
        st.error(p["message"] or "Training failed.")
    elif state in ("cancelled", "interrupted"):
        st.warning(p["message"] or f"Training was {state}.")
        if p["history"] and not p["status"].get("pruned_from") and st.button("Resume from the last checkpoint", key="train.resume", icon=":material/replay:",
                                      help="Continues with the epochs (passes over the training images) that were "
                                           "left, from the last saved epoch."):
            jobs.resume(run_id, ws)
            st.session_state["train.poll"] = _common.POLL_EVERY
            st.rerun(scope="app")
    else:
        st.warning("The status of this run cannot be read.")


def busy_runs(ws: Path) -> list[str]:
    """Runs of this workspace waiting or training in a live process (a companion included)."""
    return [r.id for r in runs.active_runs(ws)]


def progress_ui(run_id: str, ws: Path, busy_before: list[str]) -> None:
    """The live view, redrawn by its fragment every few seconds while the job or any other run is active."""
    # Drawn here, redrawn with the notices: the trainer rewrites config.json when it falls back to another backbone.
    trained_ui(runs.run_path(run_id, ws))
    p = jobs.progress(run_id, ws)
    active = p["state"] in _common.ACTIVE_STATES
    busy = busy_runs(ws)
    if active:
        live_ui(p, run_id, ws)
    else:
        result_ui(p, run_id, ws)
    companion_ui(p["status"], busy)
    feature_pass_ui(p)
    for notice in p["notices"]:
        st.info(notice)
    history = p["history"]
    if history:
        _common.curves_ui(history, "train")
        st.code("\n".join(epoch_line(h) for h in history[-LOG_LINES:]), language=None, wrap_lines=True)
    if not active:
        watch_ui(ws, busy_before)


def watch_ui(ws: Path, busy_before: list[str]) -> None:
    """Redraw the whole page once what trains has changed (a run, its companion or a search ended), so the Start
    button frees itself and the timer stays only while something still trains."""
    if st.session_state.get("train.poll") is not None and _common.busy_work(ws) != busy_before:
        st.rerun()


def page() -> None:
    ws = _common.workspace()
    st.title("Train")
    if _common.reload_keeps_work():
        st.caption("Training runs in the background on the server: you can switch pages or reload the browser, "
                   "and this page picks the run up again.")
    else:
        st.caption("Training runs in the background on the server: you can switch pages and come back. On this "
                   "shared server your work belongs to this browser tab, so keep the tab open (reloading starts "
                   "afresh).")
    _common.reconcile_runs(ws)

    run_id = _common.active_run_id()
    run_dir = None
    if run_id:
        try:
            run_dir = runs.run_path(run_id, ws)
        except RunNotFound:
            _common.forget_run()
            run_id = None
    busy = _common.busy_work(ws)
    # While anything trains (this run, its companion, another run, a search), the page polls, so the Start
    # button frees itself when the last one ends.
    active = run_dir is not None and runs.read_status(run_dir).get("state") in _common.ACTIVE_STATES
    st.session_state["train.poll"] = _common.POLL_EVERY if active or busy else None

    if run_dir is not None:
        st.subheader(f"Run {run_id}")
        st.fragment(progress_ui, run_every=st.session_state["train.poll"])(run_id, ws, busy)
        with st.expander("Settings of this run"):
            st.json((run_dir / "config.json").read_text(encoding="utf-8"))
    elif busy:
        st.fragment(watch_ui, run_every=st.session_state["train.poll"])(ws, busy)

    info = _common.selected_dataset(ws)
    if info is None:
        _common.no_dataset_guidance()
        return
    st.subheader("New run" if run_id else "Start a run")
    _common.hand_ui(info)
    config, ready = config_ui(info, ws)
    if start_ui(busy[0] if busy else None, ready):
        if st.session_state.get("train.random_ok"):  # the person chose random weights on purpose
            config = config.with_changes(weights="none").validate()
        new_id = jobs.submit(config, ws)
        _common.remember_run(new_id)
        st.rerun()


_common.guarded(page)
