"""Every TL_* setting, read and validated in one place, so the app, the job processes and the command
line agree (a job process inherits the environment of whoever started it).

A bad number is one sentence naming the setting, raised as the caller's typed error.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from core.errors import TransferLabError

_TRUE = ("1", "true", "yes")


def env_number(name: str, default: float | None, error: type[TransferLabError] = TransferLabError) -> float | None:
    """A positive number from the environment variable `name` (default when unset); `error` names a bad one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise error(f"The setting {name}={raw!r} must be a positive number.")
    return value


# ---------------------------------------------------------------- where things live


def workspace_dir(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: the argument, else TL_WORKSPACE, else ./workspace."""
    return Path(path or os.environ.get("TL_WORKSPACE") or "workspace").resolve()


def queue_dir() -> Path | None:
    """TL_QUEUE_DIR: one training queue for every workspace of a server; None: each workspace queues on its own."""
    shared = os.environ.get("TL_QUEUE_DIR")
    return Path(shared).resolve() if shared else None


def default_queue_dir(path: Path) -> None:
    """Use `path` as the server's queue unless TL_QUEUE_DIR already names one (hosted mode sets it once)."""
    os.environ.setdefault("TL_QUEUE_DIR", str(path))


# ---------------------------------------------------------------- the kind of computer


def hosted() -> bool:
    """True on a shared server (TL_HOSTED=1)."""
    return os.environ.get("TL_HOSTED", "").strip().lower() in _TRUE


def set_hosted() -> None:
    """Switch hosted mode on for this process and the jobs it starts (secrets.toml asked for it)."""
    os.environ["TL_HOSTED"] = "1"


def offline() -> bool:
    """TL_OFFLINE=1: never try a download (weights, TF Hub models, the flowers sample)."""
    return os.environ.get("TL_OFFLINE") == "1"


def debug() -> bool:
    """TL_DEBUG: the command line prints tracebacks of internal errors."""
    return bool(os.environ.get("TL_DEBUG"))


# ---------------------------------------------------------------- caps of a shared server


def session_ttl_seconds() -> float:
    """How long an unused anonymous workspace is kept (TL_SESSION_TTL_HOURS, default 12 hours)."""
    return float(env_number("TL_SESSION_TTL_HOURS", 12.0)) * 3600


def workspace_quota_bytes() -> int | None:
    """The most a workspace may hold (TL_WORKSPACE_QUOTA_MB; default 1000 MB when hosted, else no limit)."""
    mb = env_number("TL_WORKSPACE_QUOTA_MB", 1000.0 if hosted() else None)
    return None if mb is None else int(mb * 2**20)


def max_active_runs() -> int | None:
    """How many runs one workspace may have waiting or training (TL_MAX_ACTIVE_RUNS; default 2 when hosted)."""
    n = env_number("TL_MAX_ACTIVE_RUNS", 2 if hosted() else None)
    return None if n is None else int(n)


def caps_per_address() -> bool:
    """Whether the caps of anonymous visitors count per client address too, not only per browser tab
    (TL_CAPS_PER_ADDRESS, default on; switch it off where many visitors share one address)."""
    return os.environ.get("TL_CAPS_PER_ADDRESS", "1").strip().lower() in _TRUE


def client_address_header() -> str | None:
    """TL_CLIENT_ADDRESS_HEADER: behind a reverse proxy, the request header that carries the visitor's address
    (such as X-Forwarded-For or X-Real-IP; its last address counts, the one the proxy added); unset: the
    connection's own address."""
    return os.environ.get("TL_CLIENT_ADDRESS_HEADER", "").strip() or None


def max_jobs() -> int:
    """How many runs of a queue may train at once (TL_MAX_JOBS, default 1)."""
    return max(1, int(env_number("TL_MAX_JOBS", 1)))


def cancel_grace_seconds() -> float:
    """How long a cancelled job may take to stop on its own before it is stopped hard (TL_CANCEL_GRACE)."""
    return float(env_number("TL_CANCEL_GRACE", 30.0))


def max_epochs() -> int | None:
    """The most epochs any phase may train on this server (TL_MAX_EPOCHS); None: no cap."""
    if os.environ.get("TL_MAX_EPOCHS", "").strip() == "0":
        return None  # 0 has always meant "no cap"
    cap = env_number("TL_MAX_EPOCHS", None)
    return None if cap is None else int(cap)


# ---------------------------------------------------------------- web addresses visitors give (core.data.remote)

HUB_HOSTS = ("tfhub.dev", "kaggle.com", "www.kaggle.com", "storage.googleapis.com")


def hub_hosts() -> tuple[str, ...]:
    """The hosts a shared server downloads visitors' TF Hub models from (TL_HUB_HOSTS, comma-separated)."""
    raw = os.environ.get("TL_HUB_HOSTS", "")
    given = tuple(h.strip().rstrip(".").lower() for h in raw.split(",") if h.strip())
    return given or HUB_HOSTS


def hub_max_bytes() -> int:
    """The largest download of a visitor's TF Hub model on a shared server (TL_HUB_MAX_MB, default 500)."""
    return int(float(env_number("TL_HUB_MAX_MB", 500.0)) * 2**20)


def hub_timeout_seconds() -> float:
    """How long such a download may take in all (TL_HUB_TIMEOUT_S, default 600 seconds)."""
    return float(env_number("TL_HUB_TIMEOUT_S", 600.0))


# ---------------------------------------------------------------- import caps

# ImportLimits field -> (setting, unit that turns the setting's number into the field's).
IMPORT_SETTINGS = {
    "max_members": ("TL_IMPORT_MAX_MEMBERS", 1),
    "max_file_bytes": ("TL_IMPORT_MAX_FILE_MB", 2**20),
    "max_total_bytes": ("TL_IMPORT_MAX_TOTAL_MB", 2**20),
    "max_ratio": ("TL_IMPORT_MAX_RATIO", 1),
    "max_pixels": ("TL_IMPORT_MAX_PIXELS", 1),
}


def import_limits(error: type[TransferLabError] = TransferLabError) -> dict[str, float]:
    """The import caps set by TL_IMPORT_MAX_MEMBERS, _MAX_FILE_MB, _MAX_TOTAL_MB, _MAX_RATIO and _MAX_PIXELS,
    in ImportLimits' units (bytes, not MB); caps left unset are absent."""
    values: dict[str, float] = {}
    for key, (name, unit) in IMPORT_SETTINGS.items():
        number = env_number(name, None, error)
        if number is not None:
            values[key] = number * unit if key == "max_ratio" else int(number * unit)
    return values


def study_heartbeat_seconds() -> int:
    """How often a search worker tells its study's storage it is alive (TL_STUDY_HEARTBEAT, default 10 s);
    a trial silent for three times as long was killed, and is failed and retried."""
    return max(1, int(env_number("TL_STUDY_HEARTBEAT", 10)))


# ---------------------------------------------------------------- the model server


def serve_key() -> str | None:
    """TL_SERVE_KEY: when set, `python -m core serve` answers only requests with `Authorization: Bearer KEY`."""
    key = os.environ.get("TL_SERVE_KEY", "").strip()
    return key or None


def serve_from_app() -> bool:
    """TL_SERVE_FROM_APP=1: on a shared server, the owner lets visitors start a model server from the Export page
    (off by default there; always allowed on a private computer)."""
    return os.environ.get("TL_SERVE_FROM_APP", "").strip().lower() in _TRUE


# ---------------------------------------------------------------- fault injection (tests)

_FAULT_HITS: dict[str, int] = {}


def fault(point: str) -> None:
    """The one fault-injection hook: TL_FAULT_POINT=point (or point:N, the Nth time it is reached) kills this
    process with SIGKILL right here, as an out-of-memory kill, a closed SSH session or a power cut would.

    Unset (always, outside the fault tests) it does nothing. Points: feature_pass, batch, checkpoint,
    model_save, import, export.
    """
    wanted = os.environ.get("TL_FAULT_POINT")
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != point:
        return
    _FAULT_HITS[point] = _FAULT_HITS.get(point, 0) + 1
    if _FAULT_HITS[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
