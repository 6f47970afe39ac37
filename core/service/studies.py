"""Hyperparameter search: studies of many trials, each trial a complete run of the run store.

A study searches a space derived from the settings table (core/spec/fields.py) and the declarations
RunConfig.validate() checks (RANGES and CHOICES): each searchable setting has a useful span, intersected with its
declared bounds, so no value outside the trainer's bounds is ever proposed. Settings a strategy
ignores (the fine-tuning rate of a frozen backbone) are left out.

Layout: `studies/<id>/study.json` (what the study is: its base config, space, budget and storage
URL), `optuna.db` (Optuna's storage, SQLite by default, shared by every local worker), and, when
the study runs as a background job, `status.json` and `job.log` like a run. Optuna's study holds the
same description in its user attributes, so a worker on another machine can join from the storage
alone (`--storage URL --study ID --join`).

This module never imports TensorFlow or the trainer; trials run in core/service/tuner.py.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core import settings
from core.data import health
from core.errors import StudyError
from core.service import jobs
from core.spec import backbones, fields, strategies
from core.spec.config import CHOICES, RANGES, AugmentConfig, RunConfig, augment_kinds
from core.store import datasets, quota, runs
from core.store.status import RunStatus, Timings
from core.store.files import file_lock, read_json, write_json

_STUDY_ID = re.compile(r"^s-\d{8}-\d{6}-[0-9a-f]{6}$")
DEFAULT_TRIALS = 16
# The median pruner: a trial stops when its validation loss after an epoch is worse than the median
# of earlier trials at that epoch; the first trials always run to the end, to set the median.
PRUNER_STARTUP_TRIALS = 3


@dataclass(frozen=True)
class Param:
    """One searchable setting: the config field it sets, its kind and its values, in plain words."""

    name: str  # the short name used by --search and the page
    field: str  # dotted RunConfig field ("head.dropout"); "augment" and "backbone" are special
    kind: str  # "float", "int" or "choice"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    label: str = ""
    words: str = ""

    def describe(self) -> str:
        """The values, in words."""
        if self.kind == "choice":
            return ", ".join(_word(c) for c in self.choices)
        scale = " (log scale)" if self.log else ""
        return f"{self.low:g} to {self.high:g}{scale}"


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _span(field: str, low: float, high: float) -> tuple[float, float]:
    """A useful span intersected with the declared bounds."""
    lo, hi = RANGES[field]
    return max(lo, low), min(hi, high)


def _within(field: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    lo, hi = RANGES[field]
    return tuple(v for v in values if lo <= v <= hi)


def _catalogue() -> dict[str, Param]:
    """Every searchable setting, from the settings table (core/spec/fields.py; the order is the page's)."""
    rows = []
    for setting in fields.searchable():
        how = setting.search
        words = {"label": how.label or setting.label, "words": how.words}
        if how.span is not None:
            kind = "int" if setting.type is int else "float"
            rows.append(Param(how.name, setting.field, kind, *_span(setting.field, *how.span), log=how.log, **words))
        else:
            values = how.values if how.values is not None else CHOICES[setting.field]
            if setting.field in RANGES:
                values = _within(setting.field, values)
            rows.append(Param(how.name, setting.field, "choice", choices=values, **words))
    return {p.name: p for p in rows}


CATALOGUE = _catalogue()
HEAD_SEARCH = ("lr", "dropout", "hidden_units", "label_smoothing")


def _phases(config: RunConfig) -> list[Any]:
    return [p for p in strategies.get(config.strategy).phases(config) if p.epochs > 0]


def relevant(base: RunConfig, param: Param) -> bool:
    """False when the strategy ignores the setting (changing it changes no phase)."""
    kind = backbones.get(base.backbone).kind
    if param.field == "augment":  # a kind with no augmentation (texts) trains without it whatever is chosen
        return kind in augment_kinds().values()
    if param.field.startswith("head.") or param.field in ("label_smoothing", "optimizer"):
        return True
    values = param.choices if param.kind == "choice" else (param.low, param.high)
    cast = int if param.kind == "int" else type(getattr(base, param.field))
    variants = [_phases(base.with_changes(**{param.field: cast(v)})) for v in values[:2]]
    return variants[0] != variants[1]


def cached_backbones(image_size: int, kind: str = "image") -> list[str]:
    """Backbones of a kind of data whose pretrained weights are on this computer, for this size (the default list)."""
    return [s.id for s in backbones.BACKBONES.values()
            if "imagenet" in s.weights_options and s.min_size <= image_size <= s.max_size and s.kind == kind
            and backbones.cached_weights(s, image_size) is not None]


def space(base: RunConfig, search: list[str] | None = None, backbone_ids: list[str] | None = None) -> list[Param]:
    """The parameters a study searches for this config: those asked for, that the strategy uses."""
    names = list(HEAD_SEARCH) if search is None else [s.strip() for s in search if s.strip()]
    if backbone_ids and "backbone" not in names:
        names.append("backbone")
    unknown = [n for n in names if n not in CATALOGUE and n != "backbone"]
    if unknown:
        raise StudyError(f"'{unknown[0]}' is not a setting the search knows; choose from: "
                         f"{', '.join([*CATALOGUE, 'backbone'])}.")
    out: list[Param] = []
    for name in dict.fromkeys(names):
        if name == "backbone":
            chosen = _backbone_choices(base, backbone_ids)
            if len(chosen) >= 2:
                out.append(Param("backbone", "backbone", "choice", choices=tuple(chosen), label="Backbone",
                                 words="the pretrained network under the head"))
            continue
        param = CATALOGUE[name]
        if relevant(base, param):
            out.append(param)
    if not out:
        raise StudyError("The search space is empty: none of the chosen settings changes anything for the "
                         f"{strategies.get(base.strategy).label} strategy; choose at least one setting to search "
                         f"(for example {', '.join(HEAD_SEARCH)}).")
    return out


def _backbone_choices(base: RunConfig, backbone_ids: list[str] | None) -> list[str]:
    if not backbone_ids:
        found = cached_backbones(base.image_size, backbones.get(base.backbone).kind)
        return sorted(set(found) | {base.backbone}) if found else [base.backbone]
    for b in backbone_ids:
        backbones.check_id(b)
        spec = backbones.get(b)
        if spec.kind != backbones.get(base.backbone).kind:
            raise StudyError(f"{spec.label} reads another kind of data than {backbones.get(base.backbone).label}; "
                             "untick it (a study compares backbones of the dataset's kind).")
        if base.weights not in spec.weights_options:
            raise StudyError(f"{spec.label} cannot start from '{base.weights}' weights; untick it or change the weights.")
        if not spec.min_size <= base.image_size <= spec.max_size:
            raise StudyError(f"{spec.label} takes images of {spec.min_size} to {spec.max_size} pixels, not "
                             f"{base.image_size}; untick it or change the image size.")
    return list(dict.fromkeys(backbone_ids))


def apply(base: RunConfig, values: dict[str, Any]) -> RunConfig:
    """The base config with a trial's values set (validated); every trial is a plain run (no baseline)."""
    top: dict[str, Any] = {"compare_scratch": False, "preset": ""}
    head: dict[str, Any] = {}
    for name, value in values.items():
        param = CATALOGUE.get(name)
        if name == "backbone":
            top["backbone"] = value
        elif name == "augment":
            on = base.augment if base.augment.any() else AugmentConfig(flip=True, rotate=True)
            top["augment"] = on if value else AugmentConfig(**{k: False for k in asdict(base.augment)})
        elif param is None:
            raise StudyError(f"'{name}' is not a setting the search knows.")
        elif param.field.startswith("head."):
            head[param.field[5:]] = value
        else:
            top[param.field] = value
    if head:
        top["head"] = base.head.__class__(**{**asdict(base.head), **head})
    return base.with_changes(**top).validate()


def suggest(trial: Any, params: list[Param]) -> dict[str, Any]:
    """Ask an Optuna trial for a value of every parameter."""
    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "float":
            out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif p.kind == "int":
            out[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high))
        else:
            out[p.name] = trial.suggest_categorical(p.name, list(p.choices))
    return out


def current_values(base: RunConfig, params: list[Param]) -> dict[str, Any]:
    """The base config's own values of the parameters that lie inside the space (the first trial tries them)."""
    out: dict[str, Any] = {}
    for p in params:
        if p.name == "augment":
            value: Any = base.augment.any()
        else:
            value = base
            for part in p.field.split("."):
                value = getattr(value, part)
        if p.kind == "choice" and value in p.choices or p.kind != "choice" and p.low <= value <= p.high:
            out[p.name] = value
    return out


# ---------------------------------------------------------------- the store


def studies_root(ws: Path) -> Path:
    """The folder holding every study of a workspace."""
    return ws / "studies"


def new_study_id() -> str:
    return "s-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def study_path(study_id: str, ws: Path) -> Path:
    """The folder of an existing study; StudyError for an unknown id."""
    path = studies_root(ws) / study_id
    if not _STUDY_ID.match(study_id or "") or not (path / "study.json").is_file():
        if settings.hosted():  # a shared server: no server path, no session id (the folder's name)
            raise StudyError(f"There is no study '{study_id}' in your workspace.")
        raise StudyError(f"There is no study '{study_id}' in {ws}; list studies with 'python -m core study list'.")
    return path


def default_storage(study_dir: Path) -> str:
    return f"sqlite:///{study_dir.resolve() / 'optuna.db'}"


def heartbeat() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds: a trial silent for the grace period was killed."""
    interval = settings.study_heartbeat_seconds()
    return interval, 3 * interval


def shown_url(url: str) -> str:
    """A storage URL fit to print: its password replaced by ***."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _reason(url: str, exc: BaseException) -> str:
    """The first line of a driver's error, without the password and without SQLAlchemy's bracketed prefix."""
    if type(exc).__name__ == "StorageInternalError" and exc.__cause__ is not None:
        exc = exc.__cause__  # Optuna's wrapper guesses at invalid data; the driver's error says what happened
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    text = text.splitlines()[0].replace(url, shown_url(url))
    password = re.match(r"^[^:]+://[^:/@]*:([^@/]*)@", url)
    if password and password.group(1):
        text = text.replace(password.group(1), "***")
    return re.sub(r"^\([\w.]+\)\s*", "", text)[:200]


def storage_lost(url: str, study_id: str, exc: BaseException, working: bool = True) -> StudyError:
    """The sentence for a storage that stopped answering in the middle of a study (working: while running trials)."""
    if not working:
        return StudyError(f"The study storage '{shown_url(url)}' stopped answering ({_reason(url, exc)}); "
                          "try again when it is back.")
    return StudyError(f"The study storage '{shown_url(url)}' stopped answering ({_reason(url, exc)}); the trial in "
                      "progress was not recorded. When the storage is back, continue with 'python -m core tune "
                      f"--study {study_id} --join' (finished trials are kept; the lost trial is tried again).")


def open_storage(url: str, study_id: str | None = None) -> Any:
    """An Optuna storage for a URL: an RDB URL (sqlite:///, postgresql://, mysql://) with heartbeats, so a killed
    worker's trial is failed and retried, or journal:///PATH (a journal file on a shared file system). With the id
    of a study already kept there, a refusal says the storage does not answer (rather than to check the URL).

    postgresql:// opens with psycopg 3 (what SQLAlchemy 2.1 picks), mysql:// with PyMySQL; both are pinned."""
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    # Heartbeats and journal files are marked experimental in Optuna; their warnings are not the user's business.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        if url.startswith("journal://"):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(url[len("journal://"):])
            if not path.parent.is_dir():
                raise OSError(f"the folder {path.parent} does not exist")
            return JournalStorage(JournalFileBackend(str(path)))
        if not re.match(r"^(sqlite|postgresql|mysql)[+\w]*://", url):
            raise ValueError("the URL must start with sqlite://, postgresql://, mysql:// or journal://")
        engine: dict[str, Any] = {}
        if not url.startswith("sqlite"):
            # No pool: a connection closes when its session ends, so a page or a test that opens the storage every
            # second (`study show` polled) does not leave connections behind until garbage collection, and a server
            # restarted between two trials is met with a fresh connection. An unreachable host: give up after 10 s
            # rather than the system's minutes.
            from sqlalchemy.pool import NullPool

            engine["poolclass"] = NullPool
            engine["connect_args"] = {"connect_timeout": 10}
        interval, grace = heartbeat()
        return optuna.storages.RDBStorage(re.sub(r"^mysql://", "mysql+pymysql://", url), engine_kwargs=engine,
                                          heartbeat_interval=interval, grace_period=grace,
                                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    except Exception as exc:  # noqa: BLE001 - drivers raise many kinds; the user needs one sentence
        if study_id is not None:
            raise StudyError(f"The study storage '{shown_url(url)}' of study {study_id} does not answer "
                             f"({_reason(url, exc)}); try again when it is back.") from None
        raise StudyError(f"The study storage '{shown_url(url)}' cannot be opened ({_reason(url, exc)}); check the URL, "
                         "or leave it out to keep the study in the workspace.") from None


def pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=0)


def load_optuna(record: dict[str, Any]) -> Any:
    """The Optuna study of a study record."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=record["id"], storage=open_storage(record["storage"], record["id"]),
                             pruner=pruner())


def create(
    config: RunConfig, ws: Path, trials: int | None = DEFAULT_TRIALS, minutes: float | None = None,
    search: list[str] | None = None, backbone_ids: list[str] | None = None, storage: str | None = None,
) -> str:
    """Check everything, then write studies/<id>/ and the Optuna study; returns the study id.

    The first trial tries the config's own values. Nothing is written when anything is refused.
    """
    import optuna

    config.validate()
    health.check_trainable(datasets.load_dataset(config.dataset_id, ws), config.backbone)
    _check_budget(trials, minutes)
    params = space(config, search, backbone_ids)
    study_id = new_study_id()
    study_dir = studies_root(ws) / study_id
    opened = open_storage(storage) if storage else None  # a bad URL fails before anything is written
    record = {
        "id": study_id, "dataset_id": config.dataset_id, "config": json_config(config),
        "space": [p.name for p in params], "backbones": next((list(p.choices) for p in params if p.name == "backbone"), []),
        "trials": trials, "minutes": minutes, "storage": storage or default_storage(study_dir), "created": time.time(),
        "direction": "minimize", "objective": "best validation loss",
    }
    study_dir.mkdir(parents=True)
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name=study_id, storage=opened or open_storage(record["storage"]),
                                    direction="minimize", pruner=pruner())
        for key in ("dataset_id", "config", "space", "backbones", "trials", "minutes", "created"):
            study.set_user_attr(key, record[key])
        first = current_values(config, params)
        if first:
            study.enqueue_trial(first, user_attrs={"note": "the current settings"})
        write_json(study_dir / "study.json", record)
    except BaseException:
        import shutil

        shutil.rmtree(study_dir, ignore_errors=True)
        raise
    return study_id


def json_config(config: RunConfig) -> dict[str, Any]:
    import json

    return json.loads(config.to_json())


def _check_budget(trials: int | None, minutes: float | None) -> None:
    if trials is None and minutes is None:
        raise StudyError("A study needs a budget: a number of trials, minutes, or both.")
    if trials is not None and trials < 1:
        raise StudyError(f"A study needs at least one trial, not {trials}; set --trials to 1 or more.")
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise StudyError(f"A study's time budget must be a positive number of minutes, not {minutes:g}.")


_RECORD_KEYS = ("dataset_id", "config", "space", "backbones", "trials", "minutes", "created")


def record_from_storage(study_id: str, storage: str) -> dict[str, Any]:
    """A study's record read from its storage alone (what a worker on another machine starts from)."""
    import optuna

    if not _STUDY_ID.match(study_id or ""):
        raise StudyError(f"'{study_id}' is not a study id (like s-20260101-120000-0a1b2c).")
    opened = open_storage(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        try:
            attrs = optuna.load_study(study_name=study_id, storage=opened).user_attrs
        except KeyError:
            held = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
            there = f"it holds {', '.join(held[-3:])}" if held else "it holds no study"
            raise StudyError(f"The storage '{shown_url(storage)}' holds no study '{study_id}' ({there}); "
                             "check the id and the URL.") from None
    except StudyError:
        raise
    except Exception as exc:  # noqa: BLE001 - a server that went away between opening and reading
        raise storage_lost(storage, study_id, exc, working=False) from None
    if not all(k in attrs for k in ("dataset_id", "config", "space")):
        raise StudyError(f"The study '{study_id}' in '{shown_url(storage)}' was not made by TransferLab; "
                         "join a study that 'python -m core tune' created.")
    return {"id": study_id, "storage": storage, "direction": "minimize", "objective": "best validation loss",
            **{k: attrs.get(k) for k in _RECORD_KEYS}}


def join(study_id: str, ws: Path, config: RunConfig | None = None, storage: str | None = None) -> dict[str, Any]:
    """The record of a study to work on; with storage, a study kept elsewhere is recorded in this workspace
    (studies/<id>/study.json, written only once every check passed).

    A config, if given, must be of the study's dataset.
    """
    if storage and not (studies_root(ws) / study_id / "study.json").is_file():
        record = record_from_storage(study_id, storage)
        _check_dataset(record, config, ws)
        write_json(studies_root(ws) / study_id / "study.json", record)
        return record
    record = read_record(study_id, ws)
    if storage and storage != record["storage"]:
        raise StudyError(f"Study {study_id} keeps its trials in '{shown_url(record['storage'])}', not "
                         f"'{shown_url(storage)}'; leave --storage out to join it.")
    _check_dataset(record, config, ws)
    return record


def _check_dataset(record: dict[str, Any], config: RunConfig | None, ws: Path) -> None:
    if config is not None and config.dataset_id != record["dataset_id"]:
        raise StudyError(f"Study {record['id']} searches dataset {record['dataset_id']}, but the config is for "
                         f"{config.dataset_id}; use a config of that dataset, or start a new study.")
    datasets.load_dataset(record["dataset_id"], ws)  # a sentence when this workspace lacks it


def read_record(study_id: str, ws: Path) -> dict[str, Any]:
    """study.json of a study."""
    return read_json(study_path(study_id, ws) / "study.json")


def base_config(record: dict[str, Any]) -> RunConfig:
    return RunConfig.from_dict(record["config"]).validate()


def params_of(record: dict[str, Any]) -> list[Param]:
    """The study's parameters, rebuilt from its record."""
    base = base_config(record)
    return space(base, [n for n in record["space"] if n != "backbone"] + (["backbone"] if record["backbones"] else []),
                 record["backbones"] or None)


def ask_lock(record: dict[str, Any], storage: Any, study_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Held while a worker counts the trials and asks for the next one, so the budget is exact.

    On PostgreSQL and MySQL the lock is in the database (an advisory lock, a named lock), so it holds across
    machines, and a killed worker's lock goes with its connection; with SQLite (one computer) it is a file lock in
    the study folder, with a journal file a lock file beside the journal (on the same shared file system)."""
    engine = getattr(storage, "engine", None)
    dialect = engine.dialect.name if engine is not None else ""
    if dialect == "postgresql":
        return _advisory_lock(engine, record["id"])
    if dialect in ("mysql", "mariadb"):
        return _named_lock(engine, record["id"])
    if record["storage"].startswith("journal://"):
        return file_lock(Path(record["storage"][len("journal://"):] + ".ask.lock"))
    return file_lock(study_dir / ".ask.lock")


@contextlib.contextmanager
def _advisory_lock(engine: Any, study_id: str) -> Iterator[None]:
    import hashlib

    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(f"transferlab ask {study_id}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as conn, conn.begin():  # the lock ends with the transaction
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield


@contextlib.contextmanager
def _named_lock(engine: Any, study_id: str) -> Iterator[None]:
    from sqlalchemy import text

    name = f"transferlab-ask-{study_id}"
    with engine.connect() as conn:
        if conn.execute(text("SELECT GET_LOCK(:name, 600)"), {"name": name}).scalar() != 1:
            raise StudyError(f"Study {study_id}: another worker held the database's ask lock for 10 minutes; try again.")
        try:
            yield
        finally:
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})


# ---------------------------------------------------------------- reading a study


_STATE_WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def trial_row(t: Any) -> dict[str, Any]:
    seconds = None
    if t.datetime_start is not None:
        end = t.datetime_complete
        seconds = round(((end.timestamp() if end else time.time()) - t.datetime_start.timestamp()), 1)
    return {
        "number": t.number, "run_id": t.user_attrs.get("run_id"), "params": dict(t.params), "value": t.value,
        "state": _STATE_WORDS.get(t.state.name, t.state.name.lower()), "seconds": seconds,
        "val_accuracy": t.user_attrs.get("val_accuracy"), "test_accuracy": t.user_attrs.get("test_accuracy"),
        "pruned_epoch": t.user_attrs.get("pruned_epoch"), "note": t.user_attrs.get("note"),
        "worker": t.user_attrs.get("worker"),
    }


def show(study_id: str, ws: Path, storage: str | None = None) -> dict[str, Any]:
    """Every trial (number, run id, params, value, state, seconds, accuracies, worker), the best trial and the job's
    state; with storage, a study this workspace has not joined is read from the storage alone."""
    local = (studies_root(ws) / study_id / "study.json").is_file()
    record = read_record(study_id, ws) if local or not storage else record_from_storage(study_id, storage)
    try:
        study = load_optuna(record)
        rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    except StudyError:
        raise
    except Exception as exc:  # noqa: BLE001 - a database server that stopped answering
        raise storage_lost(record["storage"], study_id, exc, working=False) from None
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    best = min(done, key=lambda r: r["value"]) if done else None
    counts = {word: sum(1 for r in rows if r["state"] == word) for word in _STATE_WORDS.values()}
    workers = sorted({r["worker"] for r in rows if r["worker"]})
    return {
        "id": study_id, "dataset_id": record["dataset_id"], "space": record["space"], "backbones": record["backbones"],
        "trials_budget": record["trials"], "minutes_budget": record["minutes"], "storage": shown_url(record["storage"]),
        "objective": record["objective"], "job": job_state(study_id, ws) if local else {"state": "none"},
        "counts": counts, "workers": workers, "trials": rows, "best": best,
    }


def job_state(study_id: str, ws: Path) -> dict[str, Any]:
    """The background job's status (state "none" when the study never ran as a job here)."""
    study_dir = study_path(study_id, ws)
    status = runs.read_status(study_dir)
    if status.get("state") == "unknown":
        return {"state": "none"}
    if status.get("state") in ("queued", "running") and not runs.process_alive(status) \
            and time.time() - status.get("created", 0) > 5:
        runs.mark_ended(study_dir, "interrupted",
                        "The search stopped unexpectedly; resume it to continue with the trials it had.")
        status = runs.read_status(study_dir)
    return {k: status.get(k) for k in ("state", "message", "queue_position", "created", "finished")}


def list_studies(ws: Path) -> list[dict[str, Any]]:
    """Every study of the workspace, newest first (id, dataset, space, budget, job state)."""
    root = studies_root(ws)
    out = []
    for path in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        if not _STUDY_ID.match(path.name) or not (path / "study.json").is_file():
            continue
        record = read_json(path / "study.json")
        out.append({"id": path.name, "dataset_id": record["dataset_id"], "space": record["space"],
                    "trials_budget": record["trials"], "minutes_budget": record["minutes"],
                    "job": job_state(path.name, ws)["state"]})
    return out


def best_config(study_id: str, ws: Path) -> RunConfig:
    """The config the best finished trial trained (its run's config.json), for "Use the best settings"."""
    best = show(study_id, ws)["best"]
    if best is None or not best["run_id"]:
        raise StudyError(f"Study {study_id} has no finished trial yet; wait for one to complete.")
    return runs.load_config(runs.run_path(best["run_id"], ws))


FIGURES = {
    "history": ("plot_optimization_history", "How the best validation loss improved, trial by trial"),
    "importances": ("plot_param_importances", "Which settings mattered most"),
    "parallel": ("plot_parallel_coordinate", "Every trial's settings, one line each"),
    "slice": ("plot_slice", "Validation loss against each setting"),
}


def figures(study_id: str, ws: Path) -> dict[str, Any]:
    """Optuna's own plotly figures for the study; a figure that cannot be drawn yet is left out."""
    import optuna.visualization as vis

    study = load_optuna(read_record(study_id, ws))
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    out: dict[str, Any] = {}
    if not done:
        return out
    for key, (fn, _) in FIGURES.items():
        if key == "importances" and (len(done) < 2 or len(study.best_trial.params) < 2):
            continue
        try:
            out[key] = getattr(vis, fn)(study, target_name="validation loss")
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
    return out


# ---------------------------------------------------------------- the study as a background job


def submit(config: RunConfig, ws: Path, **kwargs: Any) -> str:
    """Create a study and start it as a background job (one queue slot, like a run); returns its id."""
    quota.check_active_runs(ws)  # a study is a job like a run: a shared server's caps count it
    quota.check_room(ws)
    study_id = create(config, ws, **kwargs)
    start_job(study_id, ws)
    return study_id


def start_job(study_id: str, ws: Path) -> None:
    """Start (or resume) the study's job process: it waits its turn in the training queue, then runs trials."""
    study_dir = study_path(study_id, ws)
    status = runs.read_status(study_dir)
    if status.get("state") in ("queued", "running") and runs.process_alive(status):
        raise StudyError(f"Study {study_id} is already running; cancel it first, or join it with another worker.")
    quota.check_active_runs(ws)
    quota.check_room(ws)
    runs.cancel_file(study_dir).unlink(missing_ok=True)
    runs.save_status(study_dir, RunStatus(state="queued", timings=Timings(created=time.time())))
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.service.tuner", str(study_dir)], cwd=jobs.PROJECT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TL_WORKSPACE": str(ws)},
        start_new_session=True,
    )
    runs.record_process(study_dir, proc.pid)


def cancel(study_id: str, ws: Path) -> None:
    """Ask the study's job to stop: the trial in progress stops at its next batch, and no new trial starts."""
    runs.request_cancel(study_path(study_id, ws))
