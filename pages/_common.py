"""What every page shares: the workspace, the error guard, the chosen dataset and the active run.

Nothing here imports TensorFlow, so the Home and Data pages stay light.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from core import settings
from core.data import samples
from core.errors import RunNotFound, TransferLabError
from core.service import compare, hosting, jobs, studies, verdict
from core.spec import kinds as spec_kinds
from core.store import datasets, drafts, files, quota, runs
from pages import _charts as charts

log = logging.getLogger("transferlab.pages")

# How often a live view re-reads a running job's folder.
POLL_EVERY = "2s"
ACTIVE_STATES = ("queued", "running")

# The training phases in words a non-programmer can follow.
PHASE_WORDS = {
    "head": "training the new classifier (backbone frozen)",
    "fine_tune": "fine-tuning the top of the backbone",
    "scratch": "training the whole network from scratch",
    "train_all": "training the whole network from an earlier run's early weights",
    "unfreeze_stem": "training the whole backbone, stem included",
    "difference": "training the layers that were not copied (the copied ones frozen)",
    "distill": "the student learning from the teacher's answers",
    "distill_head": "the student's new classifier learning from the teacher's answers",
    "distill_fine_tune": "fine-tuning the student's backbone with the teacher's answers",
    "adapt": "learning your labels while lining up the two kinds of images",
    "adapt_fine_tune": "fine-tuning while lining up the two kinds of images",
    "prune": "fine-tuning while setting the smallest weights to zero",
    **{f"unfreeze_{k}": f"training the top {k} layer group{'s' if k > 1 else ''} of the backbone" for k in range(1, 16)},
}

# The augmentation switches, label and tooltip, in the order the Data and Model pages show them.
AUGMENT_WORDS = {
    "flip": ("Flip left-right", "Mirror images at random; fine unless left and right matter (text, arrows)."),
    "rotate": ("Rotate a little", "Turn images by up to about 36 degrees either way."),
    "zoom": ("Zoom in and out", "Zoom by up to 15%, as if photographed nearer or farther away."),
    "translate": ("Shift position", "Move the image by up to 10% sideways and up or down."),
    "contrast": ("Change contrast", "Vary the contrast by up to 20%."),
    "brightness": ("Change brightness", "Make images up to 20% lighter or darker."),
    "noise": ("Background noise", "Mix quiet random noise into the clips, as a busier room would."),
    "gain": ("Louder and quieter", "Make clips up to about twice as loud or half as loud."),
    "shift": ("Shift in time", "Start each clip up to a tenth of a second earlier or later."),
    "spec_mask": ("Blank out moments and pitches", "Silence a short moment and a narrow band of pitches at random "
                  "(SpecAugment), so the model does not rely on one detail."),
}

STATE_WORDS = {
    "queued": "waiting to start",
    "running": "training",
    "done": "finished",
    "failed": "failed",
    "cancelled": "cancelled",
    "interrupted": "interrupted",
    "unknown": "unknown",
}


def mid_sentence(label: str) -> str:
    """A label inside a sentence: only its first letter lowered, so "Domain-adversarial (DANN)" keeps its DANN."""
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def workspace() -> Path:
    """This visitor's workspace: TL_WORKSPACE (else ./workspace) on a private computer.

    In hosted mode (TL_HOSTED=1, or `hosted = true` under [transferlab] in secrets.toml), a private
    folder inside it instead: the logged-in user's, which persists, else this browser session's,
    which expires (core.hosting). Training then queues server-wide, under the same root.
    """
    root = files.workspace()
    if not hosted():
        return root
    settings.default_queue_dir(root / hosting.QUEUE)
    hosting.sweep_now_and_then(root)
    identity = login_identity()
    if identity:
        return hosting.user_workspace(root, identity)
    session_id = st.session_state.setdefault("_session_workspace", hosting.new_session_id())
    # The first address seen stays this session's, so its folder does not move when the address changes.
    client = st.session_state.setdefault("_session_client", client_address())
    ws = hosting.session_path(root, session_id, client)  # made by the first write, not by this view
    hosting.visit(ws)
    return ws


def client_address() -> str | None:
    """The visitor's address: the last one in TL_CLIENT_ADDRESS_HEADER behind a proxy, else the connection's
    (None on localhost and where Streamlit does not know it)."""
    header = settings.client_address_header()
    if header:
        value = st.context.headers.get(header) or ""
        return value.split(",")[-1].strip() or None
    return st.context.ip_address


def reload_keeps_work() -> bool:
    """False for an anonymous visitor of a shared server, whose workspace belongs to this browser tab only."""
    return not hosted() or login_identity() is not None


def hosted() -> bool:
    """True on a shared server: TL_HOSTED=1, or `hosted = true` under [transferlab] in secrets.toml."""
    if not settings.hosted() and _secrets_flag():
        settings.set_hosted()  # the job processes and core's caps read the same setting
    return settings.hosted()


def _secrets_flag() -> bool:
    section = _secret("transferlab") or {}
    return str(section.get("hosted", "")).strip().lower() in ("1", "true", "yes")


def _secret(name: str) -> Mapping[str, Any] | None:
    """A top-level table of secrets.toml; None when there is no secrets file.

    A secrets file that exists but cannot be read stops every page with a sentence: running on as
    a private computer could put every visitor in one shared workspace.
    """
    try:
        return st.secrets.get(name)
    except FileNotFoundError as exc:  # Streamlit raises this for a missing and for an unreadable file
        if any(Path(p).expanduser().is_file() for p in st.get_option("secrets.files")):
            raise TransferLabError(
                "The server's secrets.toml cannot be read, so the app stops rather than guess whether it is "
                "shared; the server log says what is wrong with the file."
            ) from exc
        return None


def upload_limit_mb(ws: Path) -> int:
    """The largest upload worth sending now: server.maxUploadSize (the server refuses more), and on a shared
    server no more than the workspace's room (the import refuses more, part way). Shown, not passed to the
    uploader as max_upload_size: that is part of the widget's identity, so a changing room would drop a file."""
    limit = int(st.get_option("server.maxUploadSize"))
    room = quota.room_bytes(ws)
    return limit if room is None else max(1, min(limit, room // 2**20))  # never 0: the import says what to delete


def login_providers() -> list[str | None]:
    """The OIDC providers in secrets.toml: [None] for one set directly under [auth], else the names of
    its [auth.<name>] tables; [] when login is not set up."""
    auth = _secret("auth")
    if not auth:
        return []
    if "client_id" in auth:
        return [None]
    return [name for name, table in auth.items() if isinstance(table, Mapping) and "client_id" in table]


def login_configured() -> bool:
    """True when secrets.toml sets up at least one login provider, so st.login can work."""
    return bool(login_providers())


def login_identity() -> str | None:
    """Who is logged in (issuer and subject, else e-mail), or None."""
    if not login_configured() or not st.user.is_logged_in:
        return None
    who = st.user.get("sub") or st.user.get("email")
    return f"{st.user.get('iss', '')}|{who}" if who else None


def use_router() -> None:
    """Make sure a browser session's first page goes through app.py's navigation.

    Until some session has run app.py (which calls st.navigation), Streamlit treats the `pages/`
    folder next to the entry point as a legacy multipage app: a first visit to a deep link such as
    /train after a server start would run pages/train.py on its own (no sidebar, no page config),
    and keep doing so for every session. Switching that mode off and rerunning sends the request
    through app.py, whose navigation opens the same page (both modes name pages by URL path).
    Only a session's first run is rerun, so no widget click is ever dropped by the rerun.
    """
    # Streamlit keeps that mode in this internal class attribute (checked against Streamlit 1.67);
    # st.navigation itself sets it to False.
    from streamlit.runtime.pages_manager import PagesManager

    first_run = not st.session_state.get("_session_started")
    st.session_state["_session_started"] = True
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if first_run:
            st.rerun()


def guarded(body: Callable[[], None]) -> None:
    """Run a page body: a TransferLabError shows as its sentence, anything else as a friendly error."""
    use_router()
    try:
        body()
    except TransferLabError as exc:
        log.info("Shown to the visitor: %s", exc, exc_info=exc)
        st.error(str(exc))
    except Exception:  # noqa: BLE001 - the viewer gets a sentence, the log gets the traceback
        log.exception("Unexpected error while drawing a page")
        st.error(
            "Something went wrong on our side while showing this page. Try again; if it keeps happening, "
            "the details are in the server log."
        )


def link_to(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page of the app (plain text when a page runs on its own, as in tests)."""
    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.caption(label)


# ---------------------------------------------------------------- datasets


# The workspace draft naming the dataset in hand (core.store.drafts), so a reload keeps the person's choice.
HAND_DRAFT = "dataset_in_hand"


def selected_dataset(ws: Path) -> dict[str, Any] | None:
    """The dataset in hand: the labelled dataset the person chose on the Data page; None if there is none.

    An upload never changes it (the Data page chooses it); a reload keeps it (a workspace draft). Until one
    is chosen, the newest labelled dataset not marked as images from where the model will be used becomes
    the dataset in hand and stays so.
    """
    found = [d for d in datasets.list_datasets(ws) if d["classes"]]
    by_id = {d["id"]: d for d in found}
    # This session's choice first (tests and the Data page set "dataset_id" too), then the workspace's.
    for chosen in (st.session_state.get("dataset_in_hand"), st.session_state.get("dataset_id"), _drafted_hand(ws)):
        if chosen in by_id:
            if chosen != _drafted_hand(ws):
                choose_dataset(ws, chosen)
            return by_id[chosen]
    if not found:
        return None
    first = next((d for d in found if not datasets.is_target(d)), found[0])
    choose_dataset(ws, first["id"])
    return first


def hand_id(ws: Path) -> str | None:
    """The id of the dataset in hand as chosen (this session's choice, else the workspace's); None before any."""
    return st.session_state.get("dataset_in_hand") or _drafted_hand(ws)


def _drafted_hand(ws: Path) -> str | None:
    return (drafts.load(ws, HAND_DRAFT) or {}).get("id")


def choose_dataset(ws: Path, dataset_id: str) -> None:
    """Make a labelled dataset the dataset in hand, for this session and after a reload."""
    st.session_state["dataset_in_hand"] = dataset_id
    st.session_state["dataset_id"] = dataset_id  # the Data page shows it too
    drafts.save(ws, HAND_DRAFT, {"id": dataset_id})


def hand_ui(info: dict[str, Any]) -> None:
    """One line naming the dataset in hand, on every page that uses it."""
    total = sum(info["counts"].values())
    st.caption(f"Dataset in hand: **{info['name']}** ({total} {spec_kinds.of(info).items}; classes {', '.join(info['classes'])}). "
               "Choose another on the Data page; uploading one does not change it.")


def load_sample(ws: Path) -> dict[str, Any]:
    """The built-in `shapes` sample: the copy already in the workspace, else a fresh import."""
    for info in datasets.list_datasets(ws):
        if info.get("name") == "shapes" and info.get("source") == "shapes":
            return info
    return samples.import_sample("shapes", ws)


def dataset_label(info: dict[str, Any]) -> str:
    """One line naming a dataset for selectors: name, item count (in its kind's word) and classes."""
    total, items = sum(info["counts"].values()), spec_kinds.of(info).items
    if not info["classes"]:  # a target: unlabelled items from where the model will be used
        return f"{info['name']} ({len(info.get('unlabeled', []))} unlabelled {items}) · {info['id']}"
    return f"{info['name']} ({total} {items}, {len(info['classes'])} classes) · {info['id']}"


# The workspace draft the Model page keeps its settings in (core.store.drafts), so a reload keeps them.
MODEL_DRAFT = "model"


def model_settings(ws: Path) -> str | None:
    """The RunConfig JSON the Model page built: this browser session's, else the workspace's draft (after a
    reload, even in the middle of training); None when the Model page was never used here."""
    return st.session_state.get("run_config") or (drafts.load(ws, MODEL_DRAFT) or {}).get("config")


def no_dataset_guidance() -> None:
    """What to show when there is no dataset yet."""
    st.info("There is no dataset yet. Load the built-in sample or upload your own images on the Data page first.")
    link_to("pages/data.py", "Go to the Data page", ":material/photo_library:")


# ---------------------------------------------------------------- the active run


def reconcile_runs(ws: Path) -> None:
    """Mark runs whose process died (a server restart, a killed job) as interrupted: the store's one check,
    the same the command line makes."""
    runs.reconcile(ws)


def busy_work(ws: Path) -> list[str]:
    """What trains now in this workspace, each as the subject of a sentence ("Run `id`", "The search `id`"): the
    pages that start work poll while it is not empty and redraw themselves when it changes."""
    found = [f"Run `{r.id}`" for r in runs.active_runs(ws)]
    found += [f"The search `{s['id']}`" for s in studies.list_studies(ws) if s["job"] in ACTIVE_STATES]
    return found


def remember_run(run_id: str) -> None:
    """Make a run the active one, in session state and in the URL (so a reload reattaches)."""
    st.session_state["run_id"] = run_id
    st.query_params["run"] = run_id


def active_run_id() -> str | None:
    """The active run id from session state, else from the URL after a reload; kept in both."""
    run_id = st.session_state.get("run_id") or st.query_params.get("run")
    if run_id:
        remember_run(run_id)
    return run_id


def curves_ui(history: list[dict[str, Any]], key: str) -> None:
    """Loss and accuracy per epoch, training against validation, with what to read in them."""
    left, right = st.columns(2)
    left.plotly_chart(charts.training_curves(history, "loss"), width="stretch", key=f"{key}.loss")
    right.plotly_chart(charts.training_curves(history, "accuracy"), width="stretch", key=f"{key}.accuracy")
    st.caption("Loss measures how wrong the model is (lower is better); an epoch is one pass over all the training "
               "images. When the validation curve rises while the training curve keeps falling, the model has "
               "started to memorise the training images instead of learning the general pattern: overfitting.")


def run_picker(candidates: list[runs.RunInfo], key: str, label: str, help: str, ws: Path,
               extra: Callable[[runs.RunInfo], list[str]] | None = None) -> runs.RunInfo:
    """A selectbox over runs, each named so no two read alike (backbone, method, dataset, accuracy, when).

    It starts on the active run when it is one of them, else on the most accurate run of the dataset in hand
    (never simply the newest, which may be a weak companion or a search trial)."""
    by_id = {r.id: r for r in candidates}
    if st.session_state.get(key) not in by_id:
        st.session_state[key] = default_run(candidates, ws)
    names = {d["id"]: d["name"] for d in datasets.list_datasets(ws)}
    chosen = st.selectbox(label, list(by_id), key=key, help=help, format_func=lambda run_id: " · ".join(
        [compare.run_label(by_id[run_id], names), *(extra(by_id[run_id]) if extra else [])]))
    return by_id[chosen]


def run_choices(run_ids: list[str], ws: Path) -> tuple[list[str], Callable[[str], str]]:
    """Runs for a picker of another kind (a teacher, a run to copy layers from): those of the dataset in hand first,
    then the most accurate first, each named by compare.run_label."""
    infos = {r.id: r for r in runs.list_runs(ws) if r.id in set(run_ids)}
    names = {d["id"]: d["name"] for d in datasets.list_datasets(ws)}
    hand = selected_dataset(ws)

    def order(run_id: str) -> tuple[bool, float]:
        info = infos[run_id]
        value = (info.evaluation or {}).get("accuracy", info.status.get("test_accuracy"))
        same = bool(hand and info.config and info.config.dataset_id == hand["id"])
        return (not same, -value if isinstance(value, (int, float)) else 1.0)

    ordered = sorted((r for r in run_ids if r in infos), key=order)
    return ordered, lambda run_id: compare.run_label(infos[run_id], names)


def default_run(candidates: list[runs.RunInfo], ws: Path) -> str:
    """The active run if it is a candidate, else the most accurate of the dataset in hand, else the newest."""
    active = st.session_state.get("run_id")
    if active in {r.id for r in candidates}:
        return active
    hand = selected_dataset(ws)
    mine = [r for r in candidates if hand and r.config and r.config.dataset_id == hand["id"]] or candidates

    def accuracy(r: runs.RunInfo) -> float:
        value = (r.evaluation or {}).get("accuracy", r.status.get("test_accuracy"))
        return value if isinstance(value, (int, float)) else -1.0

    return max(mine, key=accuracy).id  # ties keep the newest (max keeps the first of equals)


def verdict_ui(run_dir: Path) -> None:
    """A finished run's verdict (core.service.verdict): green only when it beat guessing and its baseline."""
    judged = verdict.judge(run_dir)
    if judged is None:
        return
    box = {"good": st.success, "warn": st.warning, "bad": st.error}[judged.level]
    box(judged.text())


def forget_run() -> None:
    """Drop an active run id that no longer names a run."""
    st.session_state.pop("run_id", None)
    st.query_params.pop("run", None)


def sidebar(ws: Path) -> None:
    """The shared sidebar: whose workspace this is and a compact status of the active job."""
    if hosted():
        account_ui()
    else:
        st.caption(f"Workspace: `{ws}`")
    run_id = active_run_id()
    if not run_id:
        st.caption("No training run yet.")
        return
    try:
        state = runs.read_status(runs.run_path(run_id, ws)).get("state", "unknown")
    except RunNotFound:
        forget_run()
        st.caption("No training run yet.")
        return
    st.session_state["sidebar.poll"] = POLL_EVERY if state in ACTIVE_STATES else None
    st.fragment(_sidebar_status, run_every=st.session_state["sidebar.poll"])(run_id, ws)


def account_ui() -> None:
    """On a shared server: where this visitor's work lives, and logging in and out when login is set up."""
    if login_identity():
        name = st.user.get("name") or st.user.get("email") or "you"
        st.caption(f"Signed in as **{name}**. Your datasets and runs are private to your account and kept.")
        if st.button("Log out", key="account.logout", icon=":material/logout:",
                     help="Your work stays in your account for the next time you log in."):
            st.logout()
        return
    hours = settings.session_ttl_seconds() / 3600
    st.caption(f"Your datasets and runs are private to this browser tab and deleted {hours:g} hours after you last "
               "use them; reloading the page starts afresh.")
    for provider in login_providers():
        label = "Log in to keep your work" if provider is None else f"Log in with {provider.title()} to keep your work"
        if st.button(label, key="account.login" + (f".{provider}" if provider else ""), icon=":material/login:",
                     help="With an account your datasets and runs are kept between visits. Work done before "
                          "logging in stays in this tab only."):
            if provider:
                st.login(provider)
            else:
                st.login()


def _sidebar_status(run_id: str, ws: Path) -> None:
    try:
        p = jobs.progress(run_id, ws)
    except TransferLabError:
        st.caption("The active run can no longer be read.")
        return
    state = p["state"]
    st.markdown(f"**Run** `{run_id[-12:]}`: {STATE_WORDS.get(state, state)}")
    if state in ACTIVE_STATES:
        st.progress(p["fraction"], text=f"{p['fraction']:.0%} of the epochs done")
    elif state == "done" and p["status"].get("test_accuracy") is not None:
        st.caption(f"Test accuracy: {p['status']['test_accuracy']:.1%}")
    link_to("pages/train.py", "Open the Train page", ":material/monitoring:")
    if state not in ACTIVE_STATES and st.session_state.get("sidebar.poll") is not None:
        # The job just ended: a full rerun draws this without a timer.
        st.session_state["sidebar.poll"] = None
        st.rerun()
