"""Data: bring data in (zip, classes built here, samples, server folder), then check, split and look at a dataset.

What depends on the kind of data (images today) is asked of `pages._kinds` and `core.spec.kinds`."""

import io
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import streamlit as st

from core.data import health, importer, samples, texts
from core.data.limits import ImportLimits
from core.engine.augment import augmentation_preview
from core.errors import ConfigError, TransferLabError
from core.spec.config import RANGES, AugmentConfig, RunConfig, augment_kinds
from core.spec import kinds as spec_kinds
from core.store import datasets
from pages import _charts as charts
from pages import _common
from pages import _domain
from pages import _kinds

GALLERY_PAGE = 24  # thumbnails per gallery page: only these are read from disk
GALLERY_COLUMNS = 6
PREVIEW_CLASSES = 3
PREVIEW_VARIANTS = 4
SHOWN_CONFLICTS = 20
SPLIT_FIELDS = ("val_fraction", "test_fraction", "seed")
DEFAULTS = RunConfig(dataset_id="defaults")
SPLIT_HELP = ("The model learns from the training {items}. Validation {items} check it after every epoch (one pass "
              "over the training {items}); test {items} are kept aside and used once at the end to measure accuracy "
              "honestly. Each class is split in the same proportions.")
Progress = Callable[[float, str], None]


# ---------------------------------------------------------------- ways in


def upload_ui(ws: Path) -> Any:
    """A .zip of class folders; the uploaded file, or None."""
    limit = _common.upload_limit_mb(ws)
    st.caption(
        "Make one folder per class, named after the class (for example `cats/` and `dogs/`), put each "
        f"class's {_kinds.all_items()} inside, and zip the folders together. {_kinds.all_formats()} are read. "
        "Top folders named `train/`, `val/` and `test/` (each holding the class folders) keep your own split; "
        f"a top folder named `unlabeled/` is kept aside as unlabeled {_kinds.all_items()} of the same kind. "
        "Texts can also come as one table (.csv, .tsv or .jsonl): a column of texts and a column of their classes."
    )
    if limit < int(st.get_option("server.maxUploadSize")):
        st.caption(f"Your workspace on this shared server has room for about {limit} MB more; delete a dataset or "
                   "runs you no longer need to make room.")
    else:
        st.caption(f"A zip can be up to {limit} MB; for more, split the classes over several zips or shrink the photos.")
    # No type filter: the browser would refuse another file with only a small red icon (its reason on hover);
    # the import says in a sentence what the file is and what to do instead.
    return st.file_uploader(
        "Upload a .zip of class folders (or a table of texts)", key="data.upload",
        help=f"Up to {limit} MB. Each class needs at least {importer.MIN_IMAGES_TO_IMPORT} {_kinds.all_items()} to import and "
             f"{health.MIN_IMAGES_TO_TRAIN} to train; {health.ADVISED_IMAGES} or more is best.",
    )


NO_SPLIT = "(none: split it here)"


def table_ui(upload: Any, ws: Path, limits: ImportLimits) -> dict[str, Any] | None:
    """A CSV / TSV / JSON Lines table of texts: its first rows, the text, label and split columns to pick (guessed
    from the header), then the import through the same core function as the command line; the dataset, if any."""
    data = upload.getvalue()
    try:
        header, first = texts.preview(upload.name, data)
    except TransferLabError as exc:
        st.error(str(exc))
        return None
    st.caption(f"{upload.name} is a table of texts. Its first rows are below: pick the column that holds the texts "
               "and the one that holds their classes. A split column (train / val / test per row) keeps your own "
               "split; without one, the split is drawn here.")
    st.dataframe(pd.DataFrame(first, columns=header), hide_index=True, width="stretch")
    guess = texts.guess_columns(header)
    key = f"data.table.{upload.file_id}"
    left, middle, right = st.columns(3)
    text = left.selectbox("Text column", header, key=f"{key}.text", index=_index(header, guess["text"], 0),
                          help="The column whose cells are the texts to classify.")
    label = middle.selectbox("Label column", header, key=f"{key}.label", help="The column naming each text's class.",
                             index=_index(header, guess["label"], min(1, len(header) - 1)))
    splits = [NO_SPLIT, *header]
    split = right.selectbox("Split column (optional)", splits, key=f"{key}.split",
                            index=_index(splits, guess["split"], 0),
                            help="A column marking each row train, val or test; leave it at none to split here.")
    if not st.button("Import the table", key="data.table_import", type="primary", icon=":material/upload:",
                     help="Reads every row, stores each usable text and lists the rows it set aside, with the reason."):
        return None
    columns = {"text_column": text, "label_column": label, "split_column": "" if split == NO_SPLIT else split}
    return attempt(lambda p: importer.import_upload(io.BytesIO(data), upload.name, ws, limits=limits, progress=p,
                                                    columns=columns), f"Importing {upload.name}…")


def _index(options: list[str], wanted: str | None, default: int) -> int:
    return options.index(wanted) if wanted in options else default


def _builder() -> dict[str, Any]:
    """The class builder's slots (one per class) and a generation number that renews its uploaders."""
    return st.session_state.setdefault("data.builder", {"slots": [1, 2], "next": 3, "generation": 0})


def _add_class() -> None:
    b = _builder()
    b["slots"].append(b["next"])
    b["next"] += 1


def _delete_class(slot: int) -> None:
    _builder()["slots"].remove(slot)


def _reset_builder() -> None:
    b = _builder()
    b["slots"] = [b["next"], b["next"] + 1]
    b["next"] += 2
    b["generation"] += 1


def builder_ui() -> tuple[list[tuple[str, list[Any]]], list[Any], str, bool, spec_kinds.Kind, float | None]:
    """Classes built here: ([(class name, uploads)], unlabeled uploads, dataset name, create clicked, their kind, the
    length long items are cut into (sounds; None for a kind that cuts nothing))."""
    kind = _kinds.kind_ui("data.builder_kind", "What the classes hold; the uploaders below take files of this kind.")
    words = _kinds.own_items(kind)
    st.caption(
        f"Make a class for each kind of thing the model should tell apart, name it, and drop its {words} in. "
        f"You can select many {words} at once."
    )
    window = _kinds.window_ui("data.builder_window", kind)  # beside the uploads and recorders it applies to
    b = _builder()
    classes: list[tuple[str, list[Any]]] = []
    for number, slot in enumerate(b["slots"], start=1):
        name_key = f"data.class_name.{slot}"
        st.session_state.setdefault(name_key, f"Class {number}")
        with st.container(border=True):
            left, right = st.columns([4, 1], vertical_alignment="bottom")
            name = left.text_input("Class name", key=name_key, help=f"What the {words} in this class show.")
            right.button("Delete", key=f"data.class_delete.{slot}", icon=":material/delete:",
                         on_click=_delete_class, args=(slot,), help=f"Remove this class and its {words}.")
            files = st.file_uploader(
                f"{words.capitalize()} of '{name}'", type=_kinds.upload_types(kind), accept_multiple_files=True,
                key=f"data.class_files.{slot}", help=f"Select or drop many {words} at once; add more by uploading again.",
            )
            files = [*files, *_kinds.recordings_ui(kind, slot, name, window)]  # a microphone where the kind takes one
            files = [*files, *_kinds.typed_texts_ui(kind, slot, name)]  # typed texts where the kind takes them
            st.caption(f"{len(files)} {words[:-1]}(s)")
        classes.append((name, files))
    st.button("Add a class", key="data.add_class", icon=":material/add:", on_click=_add_class,
              help="Adds an empty class to name and fill, for one more kind of thing to tell apart.")
    unlabeled = st.file_uploader(
        f"Unlabeled {words} (optional)", type=_kinds.upload_types(kind), accept_multiple_files=True,
        key=f"data.unlabeled_files.{b['generation']}",
        help=f"{words.capitalize()} of the same kind that nobody has sorted into a class yet. They are kept with the dataset "
             "for later use and never used as training examples.",
    )
    st.session_state.setdefault("data.builder_name", "my classes")
    name = st.text_input("Dataset name", key="data.builder_name",
                         help="The name this dataset is listed under in the app; any name will do.")
    clicked = st.button("Create the dataset", key="data.build", type="primary", icon=":material/check:",
                        disabled=not b["slots"],
                        help=f"Checks every {words[:-1]}, stores a copy of each usable one in your workspace and lists "
                             "any it had to skip, with the reason.")
    return classes, unlabeled, name, clicked, kind, window


def samples_ui() -> str | None:
    """A built-in sample; its name when its button was clicked."""
    name = st.radio("Sample", samples.SAMPLES, key="data.sample_name", format_func=str.capitalize,
                    captions=[_kinds.sample_caption(s, samples.SAMPLE_DESCRIPTIONS[s]) for s in samples.SAMPLES],
                    help=f"Ready-made example datasets, to try TransferLab before using your own {_kinds.all_items()}.")
    clicked = st.button("Load the sample", key="data.sample", icon=":material/category:",
                        help="Adds the chosen sample to your workspace (or selects it if it is already there).")
    return name if clicked else None


def folder_ui() -> str | None:
    """A folder path on the server; the path when its button was clicked, else None."""
    hosted = _common.hosted()
    if hosted:
        st.caption("Importing from a folder on the server is switched off on this hosted server; upload a zip instead.")
    else:
        st.caption(f"For {_kinds.all_items()} already on the computer that runs TransferLab: "
                   "give the folder that holds the class folders.")
    path = st.text_input("Folder on the server", key="data.folder", disabled=hosted, placeholder="/path/to/images",
                         help=f"A folder whose sub-folders are the classes, each holding that class's {_kinds.all_items()}.")
    clicked = st.button("Import the folder", key="data.folder_import", disabled=hosted or not path,
                        help=f"Checks the {_kinds.all_items()} in that folder and stores a copy of each usable one in your workspace; "
                             "the folder itself is left as it is.")
    return path.strip() if clicked and path and not hosted else None


def load_sample(name: str, ws: Path, progress: Progress) -> dict[str, Any]:
    """A built-in sample: the copy already in the workspace, else a fresh one."""
    if name == "shapes":
        return _common.load_sample(ws)
    for info in datasets.list_datasets(ws):
        if info.get("name") == name and info.get("source") == name:
            return info
    return samples.import_sample(name, ws, progress=progress)


def imported_sentence(info: dict[str, Any]) -> str:
    """What an import brought in, in one line."""
    if datasets.is_target(info):
        return _domain.imported_sentence(info)
    extra = f" and {len(info['unlabeled'])} unlabeled" if info.get("unlabeled") else ""
    items = _kinds.of_dataset(info).items
    return f"Imported '{info['name']}': {sum(info['counts'].values())} {items} in {len(info['classes'])} classes{extra}."


def attempt(action: Callable[[Progress], dict[str, Any]], what: str) -> dict[str, Any] | None:
    """Run an import with a progress bar; a refusal shows as its sentence and the rest of the page still draws."""
    bar = st.progress(0.0, text=what)
    try:
        return action(lambda fraction, text: bar.progress(fraction, text=text))
    except TransferLabError as exc:
        st.error(str(exc))
        return None
    finally:
        bar.empty()


def bring_data_in(ws: Path) -> dict[str, Any] | None:
    """The four ways in, as tabs; the newly imported dataset, if any."""
    upload_tab, build_tab, sample_tab, folder_tab = st.tabs(
        ["Upload a zip", "Build classes here", "Built-in samples", "Folder on the server"])
    limits = ImportLimits.from_env()
    imported = None
    with upload_tab:
        role = _domain.import_role_ui("data.upload_target")
        upload_window = _kinds.window_ui("data.upload_window")  # chosen before the upload, which imports at once
        upload = upload_ui(ws)
        if upload is not None and role == "source" and texts.is_table(upload.name):
            imported = table_ui(upload, ws, limits)  # a table of texts: its columns are picked first
        # The uploader keeps its file across reruns: import each upload once.
        elif upload is not None and st.session_state.get("data.imported_upload") != upload.file_id:
            st.session_state["data.imported_upload"] = upload.file_id
            hand = _common.selected_dataset(ws)  # a target keeps class folders named like the dataset in hand's
            classes = hand["classes"] if hand else []
            imported = attempt(lambda p: importer.import_upload(upload, upload.name, ws, limits=limits, progress=p,
                                                                role=role, classes=classes, window=upload_window),
                               f"Importing {upload.name}…")
    with build_tab:
        classes, unlabeled, name, clicked, kind, window = builder_ui()
        if clicked:
            imported = attempt(lambda p: importer.import_classes(
                [(label, [(f.name, f.getvalue) for f in files]) for label, files in classes], ws, name,
                limits=limits, unlabeled=[(f.name, f.getvalue) for f in unlabeled], progress=p, kind=kind.id,
                window=window,
            ), "Importing your classes…")
            if imported is not None:
                # A fresh builder for the next dataset; the rerun draws it, and the message survives it.
                _reset_builder()
                if not _common.hand_id(ws):
                    _common.choose_dataset(ws, imported["id"])
                st.session_state["data.flash"] = imported_sentence(imported)
                st.rerun()
    with sample_tab:
        sample = samples_ui()
        if sample:
            imported = attempt(lambda p: load_sample(sample, ws, p), f"Preparing the {sample} sample…")
    with folder_tab:
        folder_role = _domain.import_role_ui("data.folder_target")
        folder_window = _kinds.window_ui("data.folder_window")
        folder = folder_ui()
        if folder:
            imported = attempt(lambda p: importer.import_server_folder(folder, ws, limits=limits, progress=p,
                                                                       role=folder_role, window=folder_window),
                               f"Importing {folder}…")
    return imported


# ---------------------------------------------------------------- choosing and deleting


def selector_ui(found: list[dict[str, Any]], ws: Path) -> str:
    """Choose the dataset in hand (kept for this session and after a reload); returns the id shown here."""
    ids = [d["id"] for d in found]
    labels = {d["id"]: _common.dataset_label(d) for d in found}
    current = st.session_state.get("dataset_id") or _common.hand_id(ws)
    # The widget mirrors "dataset_id" (which outlives this page); the callback makes a labelled choice the one in hand.
    st.session_state["data.select"] = current if current in ids else ids[0]

    def chosen() -> None:
        picked = st.session_state["data.select"]
        st.session_state["dataset_id"] = picked
        if next(d for d in found if d["id"] == picked)["classes"]:
            _common.choose_dataset(ws, picked)

    choice = st.selectbox(
        "Dataset in hand", ids, key="data.select", format_func=labels.__getitem__, on_change=chosen,
        help="The Model, Train, Search and Predictions pages use the dataset chosen here. Uploading another dataset "
             f"does not change it; {_kinds.all_items()} from where the model will be used are chosen on the Model page.",
    )
    st.session_state["dataset_id"] = choice
    return choice


def imported_ui(imported: dict[str, Any], ws: Path) -> None:
    """After an import: the first labelled dataset becomes the one in hand; a later one waits to be chosen."""
    in_hand = _common.selected_dataset(ws) if _common.hand_id(ws) else None
    if in_hand is None and not datasets.is_target(imported):  # the first training dataset of this workspace
        _common.choose_dataset(ws, imported["id"])
    st.success(imported_sentence(imported))
    if in_hand is not None and in_hand["id"] != imported["id"]:
        st.info(f"You are still working with '{in_hand['name']}'. To work with '{imported['name']}' instead, choose "
                "it under 'Dataset in hand' below.")


def _delete(dataset_id: str, name: str, ws: Path) -> None:
    """Callback of the confirmation button: delete, then say so on the next run."""
    st.session_state.pop("data.confirm_delete", None)
    try:
        datasets.delete_dataset(dataset_id, ws)
        st.session_state["data.deleted"] = name
    except TransferLabError as exc:
        st.session_state["data.delete_error"] = str(exc)


def delete_ui(info: dict[str, Any], ws: Path) -> None:
    """A delete button that asks for confirmation first."""
    key = "data.confirm_delete"
    items = _kinds.of_dataset(info).items
    if st.session_state.get(key) != info["id"]:
        st.button("Delete this dataset…", key="data.delete", icon=":material/delete:",
                  on_click=lambda: st.session_state.update({key: info["id"]}),
                  help=f"Removes the workspace's copy of these {items}, after asking you to confirm. "
                       "The files you imported from are not touched.")
        return
    used = datasets.runs_using(info["id"], ws)
    runs_note = (f" {len(used)} training run(s) used it: their models stay, but their test {items} go with it."
                 if used else "")
    st.warning(f"Delete '{info['name']}' and its {sum(info['counts'].values())} {items} for good?{runs_note}")
    yes, no = st.columns(2)
    yes.button("Yes, delete it", key="data.delete_yes", type="primary", on_click=_delete,
               args=(info["id"], info["name"], ws), help="Deletes the dataset for good; this cannot be undone.")
    no.button("Cancel", key="data.delete_no", on_click=lambda: st.session_state.pop(key, None),
              help="Keeps the dataset.")


# ---------------------------------------------------------------- split settings


def _mirror(name: str) -> None:
    """Copy a split setting to the Model page's widget of the same field, so training uses it."""
    st.session_state[f"model.{name}"] = st.session_state[f"data.{name}"]


def split_ui(predefined: bool, kind: spec_kinds.Kind) -> tuple[float, float, int]:
    """Validation and test shares and the seed (shared with the Model page)."""
    if predefined:
        st.info("This dataset came with its own train, val and test folders; that split is kept. "
                f"A part it lacks is drawn from its training {kind.items} with the share below.")
    for name in SPLIT_FIELDS:
        st.session_state[f"data.{name}"] = st.session_state.get(f"model.{name}", getattr(DEFAULTS, name))
    left, middle, right = st.columns(3)
    values = []
    for column, name, label in ((left, "val_fraction", "Validation share"), (middle, "test_fraction", "Test share")):
        lo, hi = RANGES[name]
        values.append(column.slider(
            label, float(lo), float(hi), step=0.05, key=f"data.{name}", on_change=_mirror, args=(name,),
            help=SPLIT_HELP.format(items=kind.items)))
    lo, hi = RANGES["seed"]
    seed = right.number_input("Random seed", int(lo), int(hi), step=1, key="data.seed", on_change=_mirror,
                              args=("seed",), help=f"The same seed gives the same split of the {kind.items}; "
                                                   "change it to draw a different one.")
    return values[0], values[1], int(seed)


# ---------------------------------------------------------------- report


def show_health(info: dict[str, Any], report: dict[str, Any], ws: Path) -> None:
    """Class counts, balance, sizes, skipped files and exact duplicates."""
    counts = info["counts"]
    kind = _kinds.of_dataset(info)
    a, b, c, d = st.columns(4)
    a.metric(kind.label, f"{report['images']:,}")
    b.metric("Classes", report["classes"])
    c.metric("Imbalance (largest / smallest)", f"{report['imbalance_ratio']:.1f}×",
             help=f"How many times more {kind.items} the largest class has than the smallest.")
    d.metric("Skipped files", report["skipped"])
    # Recomputed from the counts, so a dataset imported before grouping still shows one sentence per problem.
    found = (health.health_warnings(counts) + health.duplicate_warnings(info["duplicates"])
             if "duplicates" in info else info["warnings"])
    if found:
        st.warning("\n".join(f"- {w}" for w in found) if len(found) > 1 else found[0])
    if report["imbalanced"]:
        st.info(report["remedy"])
    if info.get("skipped"):
        with st.expander(f"{len(info['skipped'])} file(s) were skipped, and why"):
            st.dataframe(pd.DataFrame(info["skipped"]), hide_index=True, width="stretch")
    if report["ignored_system_files"]:
        st.caption(f"{report['ignored_system_files']} system file(s) such as `.DS_Store` and `__MACOSX/` were ignored.")
    chart, table = st.columns([2, 1])
    with chart:
        st.plotly_chart(charts.class_counts(counts), width="stretch", key="data.counts_chart")
    with table:
        st.dataframe(pd.DataFrame({"class": list(counts), kind.items: list(counts.values())}),
                     hide_index=True, width="stretch")
    _kinds.page_kind(kind).health_facts(info, report)  # images: their sizes as uploaded
    show_duplicates(info, ws)
    extras = []
    if info.get("unlabeled"):
        extras.append(f"{len(info['unlabeled'])} unlabeled {kind.item}(s) are kept with this dataset for later use.")
    if info.get("documents"):
        extras.append(f"Kept with the {kind.items}: " + ", ".join(f"`{Path(d).name}`" for d in info["documents"]) + ".")
    if extras:
        st.caption(" ".join(extras))


def show_duplicates(info: dict[str, Any], ws: Path) -> None:
    """Exact copies: a table for those within a class; both items for those across classes."""
    dups = health.find_duplicates(info)
    kind = _kinds.of_dataset(info)
    if not dups["within"] and not dups["across"]:
        st.caption(f"No exact duplicate {kind.items} were found.")
        return
    root = datasets.dataset_path(info["id"], ws)
    label_of = {rel: label for label in info["classes"] for rel in info["images"][label]}
    if dups["across"]:
        st.subheader(f"The same {kind.item} in more than one class")
        st.caption(f"Each row is one {kind.item} filed under different classes; keep it in the right class only.")
        for group in dups["across"][:SHOWN_CONFLICTS]:
            _kinds.gallery(kind).row([root / rel for rel in group["files"]],
                                     [f"{label_of[rel]} · {rel}" for rel in group["files"]], 128)
        if len(dups["across"]) > SHOWN_CONFLICTS:
            st.caption(f"…and {len(dups['across']) - SHOWN_CONFLICTS} more.")
    if dups["within"]:
        with st.expander(f"{len(dups['within'])} group(s) of exact copies within a class"):
            st.dataframe(pd.DataFrame([{"class": g["classes"][0], "copies": ", ".join(g["files"])} for g in dups["within"]]),
                         hide_index=True, width="stretch")


def show_split(report: dict[str, Any]) -> None:
    """Items per class in training, validation and test."""
    split = report["split"]
    if split["problem"]:
        st.warning(split["problem"])
        return
    counts = split["counts"]
    st.plotly_chart(charts.split_counts(counts), width="stretch", key="data.split_chart")
    st.dataframe(pd.DataFrame([{"class": c, "training": n["train"], "validation": n["val"], "test": n["test"]}
                               for c, n in counts.items()]), hide_index=True, width="stretch")


def gallery_ui(info: dict[str, Any], ws: Path) -> None:
    """Items of one class, a page at a time (images: thumbnails, a button under each shows it large)."""
    kind = _kinds.of_dataset(info)
    shows = _kinds.gallery(kind)
    left, right = st.columns([2, 1])
    label = left.selectbox("Class", info["classes"], key="data.gallery_class", help=f"Whose {kind.items} to show.")
    files = info["images"][label]
    pages = max(1, -(-len(files) // GALLERY_PAGE))
    # A class with fewer pages than the last one viewed starts again at its last page.
    st.session_state["data.gallery_page"] = min(st.session_state.get("data.gallery_page", 1), pages)
    page = int(right.number_input(f"Page (of {pages})", 1, pages, step=1, key="data.gallery_page",
                                  help=f"The gallery shows {GALLERY_PAGE} {kind.items} at a time; go to the next ones here."))
    root = datasets.dataset_path(info["id"], ws)
    shown = files[(page - 1) * GALLERY_PAGE : page * GALLERY_PAGE]
    st.caption(f"{kind.label} {(page - 1) * GALLERY_PAGE + 1}-{(page - 1) * GALLERY_PAGE + len(shown)} "
               f"of {len(files):,} in '{label}'.")
    columns = st.columns(GALLERY_COLUMNS)
    for i, rel in enumerate(shown):
        with columns[i % GALLERY_COLUMNS]:
            shows.cell(root / rel, Path(rel).name)
            if shows.large is not None and st.button(
                    "Enlarge", key=f"data.enlarge.{rel}", icon=":material/zoom_in:",
                    help=f"Opens the {kind.item} large, over the page; close it with × or Esc."):
                enlarged(shows.large, root / rel, f"{label} · {rel}")


@st.dialog("A closer look", width="large")
def enlarged(large: Callable[[Path, str], None], path: Path, caption: str) -> None:
    """The large view, in a dialog over the page where the viewer is looking (not above the grid, off-screen)."""
    large(path, caption)


def augment_ui(kind: spec_kinds.Kind) -> AugmentConfig:
    """The augmentation switches of this kind of data (shared with the Model page)."""
    st.caption(f"**Augmentation**: training shows the model randomly changed copies of each {kind.item}, so it "
               f"learns what matters rather than one exact {kind.item}. Switch changes on and off to see them; the "
               "Model page uses the same switches.")
    values = {n: False for n, k in augment_kinds().items() if k != kind.id}  # another kind's changes do nothing here
    columns = st.columns(3)
    own = [(n, words) for n, words in _common.AUGMENT_WORDS.items() if augment_kinds().get(n, kind.id) == kind.id]
    for i, (name, (label, help_text)) in enumerate(own):
        key = f"data.augment.{name}"
        st.session_state[key] = st.session_state.get(f"model.augment.{name}", getattr(DEFAULTS.augment, name))
        values[name] = columns[i % 3].checkbox(
            label, key=key, help=help_text, on_change=lambda n=name: st.session_state.update(
                {f"model.augment.{n}": st.session_state[f"data.augment.{n}"]}))
    return AugmentConfig(**values)


def preview_ui(info: dict[str, Any], ws: Path) -> None:
    """A few items next to random augmentations of them, by the layers training uses (loads TensorFlow)."""
    kind = _kinds.of_dataset(info)
    augment = augment_ui(kind)
    if not st.toggle("Show the preview", key="data.preview",
                     help="The first time, this loads the machine-learning library, which takes a few seconds."):
        return
    seed = st.session_state.setdefault("data.preview_seed", 0)
    st.button("Show other random changes", key="data.preview_again",
              on_click=lambda: st.session_state.update({"data.preview_seed": seed + 1}),
              help="Draws new random changes of the same images, as the next epoch of training would.")
    if not augment.any():
        st.info(f"Every change is switched off: training sees the {kind.items} as they are.")
    root = datasets.dataset_path(info["id"], ws)
    if (draw := _kinds.page_kind(kind).draw_preview) is not None:
        draw(info, root, augment, seed)
        return
    paths = [root / info["images"][label][0] for label in info["classes"][:PREVIEW_CLASSES]]
    with st.spinner("Applying the changes…"):
        rows = augmentation_preview(paths, augment, seed, variants=PREVIEW_VARIANTS)
    for label, row in zip(info["classes"], rows):
        st.image(row, caption=[f"{label}: as trained"] + [f"changed {i}" for i in range(1, len(row))], width=140)


def show_dataset(info: dict[str, Any], ws: Path) -> None:
    """The chosen dataset: health report, split, gallery and (for a kind that has one) augmentation preview."""
    kind = _kinds.of_dataset(info)
    previewed = _kinds.page_kind(kind).augment_preview
    health_tab, split_tab, gallery_tab, *preview_tab = st.tabs(
        ["Health report", "Split", "Gallery"] + (["Augmentation preview"] if previewed else []))
    with split_tab:
        val_fraction, test_fraction, seed = split_ui(bool(info.get("predefined_split")), kind)
        try:
            RunConfig(dataset_id=info["id"], val_fraction=val_fraction, test_fraction=test_fraction, seed=seed).validate()
        except ConfigError as exc:
            st.warning(str(exc))
    report = health.health_report(info, val_fraction, test_fraction, seed)
    with health_tab:
        show_health(info, report, ws)
    with split_tab:
        show_split(report)
    with gallery_tab:
        gallery_ui(info, ws)
    if preview_tab:
        with preview_tab[0]:
            preview_ui(info, ws)


# ---------------------------------------------------------------- page


def page() -> None:
    ws = _common.workspace()
    st.title("Data")
    st.caption(
        f"A **dataset** is a set of example {_kinds.all_items()} sorted into **classes**: the categories the model "
        "learns to tell apart. "
        + "; ".join(_kinds.page_kind(spec_kinds.get(k)).stored_how for k in spec_kinds.ids())
        + "; every file that cannot be used is listed with the reason."
    )
    _common.selected_dataset(ws)  # pins the dataset in hand before an import adds a newer one
    imported = bring_data_in(ws)
    if imported is not None:
        imported_ui(imported, ws)
    if "data.flash" in st.session_state:
        st.success(st.session_state.pop("data.flash"))
    if "data.deleted" in st.session_state:
        st.success(f"Deleted '{st.session_state.pop('data.deleted')}'.")
    if "data.delete_error" in st.session_state:
        st.error(st.session_state.pop("data.delete_error"))

    st.header("Your datasets")
    found = datasets.list_datasets(ws)
    if not found:
        st.info("No dataset yet: upload a zip, build classes, or load a built-in sample above.")
        return
    dataset_id = selector_ui(found, ws)
    info = next(d for d in found if d["id"] == dataset_id)
    delete_ui(info, ws)
    info = _domain.marker_ui(info, ws)
    if info["classes"]:
        show_dataset(info, ws)
    else:
        _domain.unlabelled_dataset_ui(info, ws)
    _common.link_to("pages/model.py", "Next: choose a model", ":material/tune:")


_common.guarded(page)
