"""On a shared server no sentence shown to a visitor names a server folder or the visitor's session id.

Every typed error a visitor can meet is raised here with a hosted session workspace, and its text is
checked against the server's workspace root, the session id and the home folder (Keras's cache).
Locally the same errors keep naming the full paths.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from core.data import importer
from core.engine import networks, training
from core.errors import TrainingFailed, TransferLabError
from core.service import hosting, jobs, studies
from core.ship import runfiles
from core.spec import backbones
from core.spec.config import RunConfig
from core.store import datasets, quota, runs

GONE_DATASET = "shapes-0123abcd"
GONE_RUN = "20260101-120000-0123456789ab"


def _one_class_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("only/a.png", b"not an image")
    return buf.getvalue()


def _finished_run_without_dataset(ws: Path) -> Path:
    """A finished run whose dataset was deleted since (the Export page's case)."""
    run_dir = runs.create_run(RunConfig(dataset_id=GONE_DATASET), ws)
    runs.update_status(run_dir, "done")
    (run_dir / "model.keras").write_bytes(b"model")
    (run_dir / "split.json").write_text('{"classes": ["a", "b"], "train": [], "val": [], "test": [["a/1.png", 0]]}')
    return run_dir


def _disk_full(ws: Path) -> None:
    raise TrainingFailed(training.disk_full_message(ws))  # what a run's status says when the disk fills


def _full_workspace(ws: Path) -> None:
    (ws / "big.bin").write_bytes(b"\0" * 2**20)
    quota.check_room(ws, adding=2**20)


# Each raises one typed error a visitor of a shared server can meet, given the visitor's workspace.
RAISERS: dict[str, Callable[[Path], object]] = {
    "dataset lookup": lambda ws: datasets.dataset_path(GONE_DATASET, ws),
    "dataset record": lambda ws: datasets.load_dataset(GONE_DATASET, ws),
    "dataset deletion": lambda ws: datasets.delete_dataset(GONE_DATASET, ws),
    "run lookup": lambda ws: runs.run_path(GONE_RUN, ws),
    "run deletion": lambda ws: runs.delete_run(GONE_RUN, ws),
    "run progress": lambda ws: jobs.progress(GONE_RUN, ws),
    "run cancel": lambda ws: jobs.cancel(GONE_RUN, ws),
    "run resume": lambda ws: jobs.resume(GONE_RUN, ws),
    "training a deleted dataset": lambda ws: jobs.submit(RunConfig(dataset_id=GONE_DATASET), ws),
    "export after the dataset was deleted": lambda ws: runfiles.dataset_root(
        p := _finished_run_without_dataset(ws), runs.load_config(p)),
    "weights missing": lambda ws: networks.fetch_weights(backbones.get("mobilenet_v2_1.0"), 160),
    "weights download offline": lambda ws: networks.download_weights(backbones.get("mobilenet_v2_1.0"), 160),
    "classifier missing": lambda ws: networks.fetch_classifier(backbones.get("mobilenet_v2_1.0")),
    "hub model offline": lambda ws: networks.fetch_hub(backbones.get(backbones.hub_id(backbones.HUB_MODELS[0].handle))),
    "hub folder": lambda ws: backbones.hub_id(str(ws)),
    "upload of one class": lambda ws: importer.import_upload(io.BytesIO(_one_class_zip()), "one.zip", ws),
    "workspace full": _full_workspace,
    "disk full while training": _disk_full,
    "study lookup": lambda ws: studies.study_path("s-20260101-120000-abcdef", ws),
}


@pytest.fixture
def visitor(ws, monkeypatch) -> Path:
    """A session workspace of a shared server whose root is `ws`, with a 1 MB quota."""
    monkeypatch.setenv("TL_HOSTED", "1")
    monkeypatch.setenv("TL_WORKSPACE_QUOTA_MB", "1")
    session = hosting.session_workspace(ws, hosting.new_session_id())
    session.mkdir(parents=True, exist_ok=True)
    return session


@pytest.mark.parametrize("case", list(RAISERS))
def test_no_typed_error_names_a_server_path_or_the_session_id_when_hosted(case, visitor, ws, _isolated_home):
    with pytest.raises(TransferLabError) as raised:
        RAISERS[case](visitor)
    text = str(raised.value)
    assert text.strip(), case
    for secret in (str(ws), str(ws.resolve()), visitor.name, str(_isolated_home), str(Path.home()), ".keras/models"):
        assert secret not in text, (case, text)


def test_the_missing_file_is_named_and_the_operator_asked_when_hosted(visitor):
    with pytest.raises(TransferLabError) as raised:
        networks.fetch_weights(backbones.get("mobilenet_v2_1.0"), 160)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in str(raised.value)
    assert "ask whoever runs this server" in str(raised.value)


def test_locally_the_messages_keep_the_full_paths(ws, _isolated_home):
    with pytest.raises(TransferLabError, match="in " + str(ws)):
        datasets.dataset_path(GONE_DATASET, ws)
    with pytest.raises(TransferLabError, match="in " + str(ws)):
        runs.run_path(GONE_RUN, ws)
    with pytest.raises(TransferLabError) as raised:
        networks.fetch_weights(backbones.get("mobilenet_v2_1.0"), 160)
    assert str(backbones.keras_models_dir()) in str(raised.value)


# Names that hold server folders wherever they appear in core.
SERVER_PLACES = {"ws", "root", "models", "folder", "run_dir", "cache", "workspace"}
# Faces only the server's operator uses: the command line and the benchmarks.
OPERATOR_ONLY = ("cli.py", "bench/")


def test_every_typed_error_that_formats_a_server_folder_has_a_hosted_wording():
    """A new `raise …Error(f"… {ws} …")` must come with a hosted-mode sentence in the same function."""
    import ast

    from tests.conftest import ROOT

    missing = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = path.relative_to(ROOT / "core").as_posix()
        if rel.startswith(OPERATOR_ONLY):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            says_hosted = "hosted()" in ast.unparse(func)
            for node in ast.walk(func):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                shown = {n.id for v in ast.walk(node.exc) if isinstance(v, ast.FormattedValue)
                         # run_dir.name is only the run's id; a call (a size in words) makes something else of it
                         if not (isinstance(v.value, ast.Attribute) and v.value.attr in ("name", "stem"))
                         and not isinstance(v.value, ast.Call)
                         for n in ast.walk(v.value) if isinstance(n, ast.Name)}
                if shown & SERVER_PLACES and not says_hosted:
                    missing.append(f"{rel}:{node.lineno} {sorted(shown & SERVER_PLACES)}")
    assert not missing, missing


def test_an_offline_shared_server_says_so_for_a_tf_hub_address(visitor):
    with pytest.raises(TransferLabError, match="This server is offline"):
        networks.fetch_hub(backbones.get(backbones.hub_id(backbones.HUB_MODELS[0].handle)))
