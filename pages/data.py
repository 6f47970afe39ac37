"""Data: bring images in (sample, zip upload, server folder), choose a dataset, and look at it."""

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import streamlit as st

from core import charts, datasets
from core.errors import TransferLabError
from pages import _common

GALLERY_PER_CLASS = 6


def sample_ui() -> bool:
    """The built-in sample; True when its button was clicked."""
    st.caption(f"{datasets.SHAPES_PER_CLASS * len(datasets.SHAPE_CLASSES)} generated pictures of circles, squares, "
               "triangles and stars: a quick way to see every step work.")
    return st.button("Load the built-in sample", key="data.sample", icon=":material/category:",
                     help="Adds the 'shapes' sample (4 classes, 100 images each) to your workspace.")


def upload_ui() -> Any:
    """A .zip of class folders; the uploaded file, or None."""
    st.caption(
        "Make one folder per class, named after the class (for example `cats/` and `dogs/`), put each "
        "class's images inside, and zip the folders together. JPEG, PNG, BMP, GIF, WebP and TIFF images are read."
    )
    return st.file_uploader("Upload a .zip of class folders", type=["zip"], key="data.upload",
                            help="Each class needs at least 2 images to import and 10 to train; 100 or more is best.")


def folder_ui() -> str | None:
    """A folder path on the server; the path when its button was clicked, else None."""
    hosted = os.environ.get("TL_HOSTED") == "1"
    if hosted:
        st.caption("Importing from a folder on the server is switched off on this hosted server; upload a zip instead.")
    else:
        st.caption("For images already on the computer that runs TransferLab: "
                   "give the folder that holds the class folders.")
    path = st.text_input("Folder on the server", key="data.folder", disabled=hosted, placeholder="/path/to/images",
                         help="A folder whose sub-folders are the classes, each holding that class's images.")
    clicked = st.button("Import the folder", key="data.folder_import", disabled=hosted or not path)
    return path.strip() if clicked and path and not hosted else None


def selector_ui(found: list[dict[str, Any]]) -> str:
    """Choose one of the workspace's datasets; returns its id (kept in session state)."""
    ids = [d["id"] for d in found]
    labels = {d["id"]: _common.dataset_label(d) for d in found}
    current = st.session_state.get("dataset_id")
    # The widget mirrors "dataset_id" (which outlives this page); the callback copies a choice back.
    st.session_state["data.select"] = current if current in ids else ids[0]
    choice = st.selectbox(
        "Dataset to work with", ids, key="data.select", format_func=labels.__getitem__,
        on_change=lambda: st.session_state.update(dataset_id=st.session_state["data.select"]),
        help="The Model and Train pages use the dataset chosen here.",
    )
    st.session_state["dataset_id"] = choice
    return choice


def import_upload(upload: Any, ws: Path) -> dict[str, Any]:
    """Write the upload to a private temporary file under a generated name, import it, delete the file."""
    tmp_dir = tempfile.mkdtemp(prefix="tl-upload-")
    try:
        tmp_file = Path(tmp_dir) / f"{secrets.token_hex(8)}.zip"
        tmp_file.write_bytes(upload.getvalue())
        return datasets.import_path(tmp_file, ws, name=Path(upload.name).stem, source=upload.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def attempt(action: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Run an import; a refusal shows as its sentence and the rest of the page still draws."""
    try:
        return action()
    except TransferLabError as exc:
        st.error(str(exc))
        return None


def show_dataset(info: dict[str, Any], ws: Path) -> None:
    """Class counts (chart and table), health warnings, skipped files and a small gallery."""
    counts = info["counts"]
    st.caption(f"{sum(counts.values())} images in {len(counts)} classes.")
    for warning in info["warnings"]:
        st.warning(warning)
    chart, table = st.columns([2, 1])
    with chart:
        st.plotly_chart(charts.class_counts(counts), width="stretch", key="data.counts_chart")
    with table:
        st.dataframe(pd.DataFrame({"class": list(counts), "images": list(counts.values())}),
                     hide_index=True, width="stretch")
    if info["skipped"]:
        with st.expander(f"{len(info['skipped'])} file(s) were skipped, and why"):
            st.dataframe(pd.DataFrame(info["skipped"]), hide_index=True, width="stretch")
    st.subheader("A few images of each class")
    by_class: dict[str, list[Path]] = {}
    for label, path in datasets.iter_thumbnails(info, ws, per_class=GALLERY_PER_CLASS):
        by_class.setdefault(label, []).append(path)
    for label, paths in by_class.items():
        st.markdown(f"**{label}**")
        st.image([str(p) for p in paths], width=96)


def page() -> None:
    ws = _common.workspace()
    st.title("Data")
    st.caption(
        "A dataset is a set of example images sorted into classes: the categories the model learns to tell apart. "
        "Every image is checked, turned upright, converted to RGB and stored as a fresh copy; "
        "unreadable files are skipped."
    )
    sample_tab, upload_tab, folder_tab = st.tabs(["Built-in sample", "Upload a zip", "Folder on the server"])
    imported: dict[str, Any] | None = None
    with sample_tab:
        if sample_ui():
            with st.spinner("Preparing the sample images…"):
                imported = attempt(lambda: _common.load_sample(ws))
    with upload_tab:
        upload = upload_ui()
        # The uploader keeps its file across reruns: import each upload once.
        if upload is not None and st.session_state.get("data.imported_upload") != upload.file_id:
            st.session_state["data.imported_upload"] = upload.file_id
            with st.spinner(f"Importing {upload.name}…"):
                imported = attempt(lambda: import_upload(upload, ws))
    with folder_tab:
        folder = folder_ui()
        if folder:
            with st.spinner(f"Importing {folder}…"):
                imported = attempt(lambda: datasets.import_path(folder, ws))
    if imported is not None:
        st.session_state["dataset_id"] = imported["id"]
        st.success(f"Imported '{imported['name']}': {sum(imported['counts'].values())} images "
                   f"in {len(imported['classes'])} classes.")

    st.header("Your datasets")
    found = datasets.list_datasets(ws)
    if not found:
        st.info("No dataset yet: load the built-in sample or upload a zip above.")
        return
    dataset_id = selector_ui(found)
    show_dataset(next(d for d in found if d["id"] == dataset_id), ws)
    _common.link_to("pages/model.py", "Next: choose a model", ":material/tune:")


_common.guarded(page)
