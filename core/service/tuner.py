"""Running a study's trials: `work()` in the foreground (the CLI's tune), or the background job
`python -m core.service.tuner STUDY_DIR`, started by core.service.studies.start_job.

Each worker loops: under the study's ask lock it fails the trials of killed workers (their
heartbeat went silent; RetryHeartbeatStaleTrialCallback puts their settings back in line), counts
the trials that are finished or running, and asks Optuna for the next one only while the budget has
room; so several local workers on one study never run more trials than it has, and no finished
trial runs again. When the budget is used up but trials of other workers (or of a killed one, until
its heartbeat goes stale) still run, a worker waits for them. The ask lock is held in the database
for PostgreSQL and MySQL (studies.ask_lock), so the budget is exact across machines. A worker so slow
that another found its heartbeat stale loses that trial (it was failed, and its settings are tried
again) and goes on with the next; a storage that stops answering ends the work with one sentence.

A trial is a complete run (config.json exact, status.json naming the study and the trial) trained
by core.engine.training.run, which reuses the feature cache for frozen backbones. A worker's trials
that train the head alone share one core.engine.trials.Shared: the backbone is built once per
process, the features read once, the best epoch kept in memory, the test split scored on cached
features; every trial still ends as a complete run folder. After every epoch
the trial reports its validation loss; when Optuna's pruner says stop (or the loss diverged), the run
ends after that epoch, is evaluated like any other, and its status says pruned, with the epoch.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from core import events, settings
from core.engine import training
from core.engine.trials import Shared
from core.errors import StudyError, TrainingFailed, TransferLabError
from core.service import jobs, studies, worker
from core.store import quota, runs

MAX_FAILURES_IN_A_ROW = 3


def _pruning_callback(trial: Any):
    import tf_keras as keras

    class TrialPruning(keras.callbacks.Callback):
        """Report the validation loss after each epoch (counted across phases); stop the run when Optuna prunes it.

        Unlike optuna_integration's TFKerasPruningCallback, which raises inside fit(), this ends the
        run cleanly after the epoch (stop_run), so the pruned trial keeps its model and evaluation.
        """

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.stop_run = False
            self.reason = ""
            self.error: Exception | None = None  # the storage failed; Keras would drop the error's cause

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.epoch += 1
            val_loss, loss = float(logs.get("val_loss", math.nan)), float(logs.get("loss", math.nan))
            if not (math.isfinite(val_loss) and math.isfinite(loss)):
                self.reason = "diverged"
            else:
                try:
                    trial.report(val_loss, self.epoch)
                    if trial.should_prune():
                        self.reason = "median"
                except Exception as exc:  # noqa: BLE001 - raised again by run_trial, outside Keras
                    self.error = exc
                    self.model.stop_training = True
                    return
            if self.reason:
                self.stop_run = True
                self.model.stop_training = True

    return TrialPruning()


def _mark_pruned(run_dir: Path, epoch: int, message: str) -> None:
    """A trial run the search stopped early: its status says so, at which epoch and why."""
    with runs.edit_status(run_dir) as status:
        status.verdicts.pruned, status.verdicts.pruned_epoch, status.message = True, epoch, message


def _pruned_message(epoch: int, reason: str) -> str:
    if reason == "diverged":
        return (f"Pruned by the search after epoch {epoch}: its loss diverged (it became NaN or infinite), "
                "so the learning rate was too high for these settings.")
    return (f"Pruned by the search after epoch {epoch}: its validation loss was worse than the median of earlier "
            "trials at that epoch, so it was stopped to save time.")


def run_trial(trial: Any, record: dict[str, Any], ws: Path, listener: events.Listener | None,
              stop: Callable[[], bool], shared: Shared | None = None) -> tuple[str, float | None]:
    """Train one trial as a run; returns (Optuna state name, value).

    shared: what this process's trials share (core.engine.trials): a trial that trains its head alone reuses the
    backbone built, and the features read, by an earlier trial."""
    import tf_keras as keras

    base = studies.base_config(record)
    values = studies.suggest(trial, studies.params_of(record))
    config = studies.apply(base, values)
    quota.check_room(ws)  # every trial is a run on disk: a full workspace stops the search with the quota's sentence
    run_dir = runs.create_run(config, ws, study=record["id"], trial=trial.number)
    trial.set_user_attr("run_id", run_dir.name)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    if shared is None or not shared.trunks:
        keras.backend.clear_session()  # one process trains many trials: free the previous models (none shared)
    pruning = _pruning_callback(trial)
    started = time.monotonic()
    try:
        result = training.run(config, run_dir, listener, should_stop=lambda: runs.cancel_requested(run_dir) or stop(),
                              callbacks=[pruning], shared=shared)
    except TrainingFailed as exc:
        if pruning.error is not None:
            raise pruning.error  # noqa: B904 - the storage's own error, with its cause
        trial.set_user_attr("seconds", round(time.monotonic() - started, 2))
        if pruning.stop_run or "NaN" in str(exc):
            epoch = max(1, pruning.epoch)
            message = _pruned_message(epoch, "diverged")
            _mark_pruned(run_dir, epoch, message)
            trial.set_user_attr("pruned_epoch", epoch)
            return "PRUNED", None
        trial.set_user_attr("message", str(exc))
        return "FAIL", None
    except TransferLabError as exc:
        trial.set_user_attr("message", str(exc))
        return "FAIL", None
    if pruning.error is not None:
        raise pruning.error
    trial.set_user_attr("seconds", round(time.monotonic() - started, 2))
    if result["state"] != "done":
        trial.set_user_attr("message", "cancelled")
        return "CANCELLED", None
    trial.set_user_attr("val_accuracy", result.get("val_accuracy"))
    trial.set_user_attr("test_accuracy", result.get("test_accuracy"))
    losses = [e["metrics"].get("val_loss", math.inf) for e in runs.read_events(run_dir) if e.get("type") == "epoch_end"]
    best = min((v for v in losses if math.isfinite(v)), default=None)
    if pruning.stop_run:
        message = _pruned_message(pruning.epoch, pruning.reason)
        _mark_pruned(run_dir, pruning.epoch, message)
        trial.set_user_attr("pruned_epoch", pruning.epoch)
        return "PRUNED", None
    if best is None:
        return "FAIL", None
    return "COMPLETE", best


def _heartbeat(storage: Any, trial_id: int, done: threading.Event, lost: list[BaseException]) -> None:
    """Beat for a trial until done; a storage that stops answering is noted in `lost` (the trial then stops)."""
    interval = storage.get_heartbeat_interval()
    try:
        storage.record_heartbeat(trial_id)
        while not done.wait(interval):
            storage.record_heartbeat(trial_id)
    except Exception as exc:  # noqa: BLE001 - any driver error: the worker reports it in one sentence
        lost.append(exc)


def _ask(study: Any, storage: Any, record: dict[str, Any], study_dir: Path, total: int | None) -> tuple[Any, bool]:
    """Under the study's ask lock (in the database for PostgreSQL and MySQL): fail the trials of killed workers (their
    settings are queued again), count the finished and running trials, and ask for the next trial only while the
    budget has room. Returns (the trial, False), (None, True) to wait for other workers' trials, or (None, False)
    when the budget is used."""
    from optuna.storages import fail_stale_trials

    beats = _beats(storage)
    with studies.ask_lock(record, storage, study_dir):
        if beats:
            fail_stale_trials(study)
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        finished, running = sum(s in ("COMPLETE", "PRUNED") for s in states), states.count("RUNNING")
        if total is None or finished + running < total:
            return study.ask(), False
    # Another worker's trial is under way, or a killed one whose heartbeat has yet to go stale (it is then failed
    # and its settings queued again): wait and look again.
    return None, bool(beats and running and finished < total)


def _beats(storage: Any) -> int:
    return hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() or 0


def _run_and_tell(study: Any, storage: Any, trial: Any, record: dict[str, Any], ws: Path,
                  listener: events.Listener | None, stop: Callable[[], bool], shared: Shared) -> str:
    """Run one trial with its heartbeat and tell Optuna how it ended; returns its state name."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    done, lost = threading.Event(), []
    if _beats(storage):
        # Optuna's optimize() beats for its trials; ask() and tell() leave it to the caller.
        threading.Thread(target=_heartbeat, args=(storage, trial._trial_id, done, lost), daemon=True).start()
    try:
        state, value = run_trial(trial, record, ws, listener, lambda: bool(lost) or stop(), shared)
    except UpdateFinishedTrialError:
        done.set()  # a slow worker: another one found its heartbeat stale, failed the trial and queued its settings
        return "LOST"
    except BaseException:
        done.set()
        with contextlib.suppress(Exception):  # the storage may be what failed
            study.tell(trial, state=TrialState.FAIL)
        raise
    done.set()
    if lost:
        raise lost[0]
    try:
        if state == "COMPLETE":
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.PRUNED if state == "PRUNED" else TrialState.FAIL)
    except UpdateFinishedTrialError:
        return "LOST"
    return state


def _load(study_id: str, ws: Path, trials: int | None, minutes: float | None) -> tuple[dict[str, Any], Any, Any]:
    """The study's record, its storage and its Optuna study, with this worker's budget in the record."""
    import optuna

    record = dict(studies.read_record(study_id, ws))
    record["trials"] = trials if trials is not None else record["trials"]
    record["minutes"] = minutes if minutes is not None else record["minutes"]
    if record["trials"] is not None and record["trials"] < 1 or record["minutes"] is not None and record["minutes"] <= 0:
        raise StudyError("A study needs a budget of at least one trial or a positive number of minutes.")
    storage = studies.open_storage(record["storage"], study_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_id, storage=storage, pruner=studies.pruner())
    except KeyError:
        raise StudyError(f"The storage '{studies.shown_url(record['storage'])}' no longer holds study {study_id}.") from None
    return record, storage, study


def work(
    study_id: str, ws: Path, listener: events.Listener | None = None, should_stop: Callable[[], bool] | None = None,
    trials: int | None = None, minutes: float | None = None, on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run trials of a study until its trial budget is used up (counting every worker's), this worker's minutes
    are over, or a stop is asked for; returns what this worker did and the study's best trial.

    A storage that stops answering ends the work with one sentence (StudyError); nothing local needs cleaning up
    before the same command is run again."""
    import warnings

    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    # study.ask() warns that heartbeats are meant for optimize(); this worker beats for its own trials.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    record, storage, study = _load(study_id, ws, trials, minutes)
    study_dir = studies.study_path(study_id, ws)
    stop = should_stop or (lambda: runs.cancel_requested(study_dir))
    try:
        ended, mine = _loop(study, storage, record, ws, study_dir, listener, stop, on_trial)
        summary = studies.show(study_id, ws)
    except (SQLAlchemyError, StorageInternalError, ConnectionError) as exc:
        raise studies.storage_lost(record["storage"], study_id, exc) from None
    return {"id": study_id, "ended": ended, "trials_here": mine, "counts": summary["counts"], "best": summary["best"]}


def _loop(study: Any, storage: Any, record: dict[str, Any], ws: Path, study_dir: Path, listener: events.Listener | None,
          stop: Callable[[], bool], on_trial: Callable[[dict[str, Any]], None] | None) -> tuple[str, list[int]]:
    """Ask, run and tell trials until the budget, the time or a stop ends the work; (why it ended, trial numbers)."""
    started = time.monotonic()
    mine: list[int] = []
    failures: list[str] = []
    shared = Shared()  # the backbone, features and latency this process's head-only trials share
    while True:
        if stop():
            return "cancelled", mine
        if record["minutes"] is not None and time.monotonic() - started >= record["minutes"] * 60:
            return "time", mine
        trial, wait = _ask(study, storage, record, study_dir, record["trials"])
        if trial is None:
            if not wait:
                return "budget", mine
            time.sleep(storage.get_heartbeat_interval())
            continue
        state = _run_and_tell(study, storage, trial, record, ws, listener, stop, shared)
        if state == "LOST":  # failed by another worker, which tries its settings again: not this worker's trial
            continue
        mine.append(trial.number)
        if on_trial is not None:
            on_trial(studies.trial_row(study.get_trials(deepcopy=False)[trial.number]))
        if state == "CANCELLED":
            return "cancelled", mine
        failures = failures + [state] if state == "FAIL" else []
        if len(failures) >= MAX_FAILURES_IN_A_ROW:
            message = study.get_trials(deepcopy=False)[trial.number].user_attrs.get("message", "")
            raise StudyError(f"{MAX_FAILURES_IN_A_ROW} trials in a row failed, so the search stopped"
                             f"{': ' + message if message else ''}")


def main(study_dir: Path) -> None:
    """The study's job process: wait for a slot in the training queue, then run trials until the budget is used."""
    log = open(study_dir / "job.log", "ab", buffering=0)
    os.dup2(log.fileno(), 1)  # TensorFlow's C++ logs too
    os.dup2(log.fileno(), 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    if not jobs.wait_turn(study_dir):
        return
    threading.Thread(target=worker._watchdog, args=(study_dir, settings.cancel_grace_seconds()), daemon=True).start()
    ws = study_dir.parent.parent
    try:
        result = work(study_dir.name, ws)
    except TransferLabError as exc:
        runs.mark_ended(study_dir, "failed", str(exc))
        return
    except BaseException as exc:
        runs.mark_ended(study_dir, "failed", f"The search stopped unexpectedly ({type(exc).__name__}).")
        raise
    state = "cancelled" if result["ended"] == "cancelled" else "done"
    words = {"budget": "all its trials ran", "time": "its time was up", "cancelled": "it was cancelled"}
    with runs.edit_status(study_dir) as status:  # a study's status: a run's, with its trial counts beside
        status.state, status.timings.finished = state, time.time()
        status.message = f"The search ended because {words[result['ended']]}."
        status.extra["counts"] = result["counts"]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
