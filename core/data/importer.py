"""Importing images (or any kind of data, see core.data.kinds) as a dataset: a folder of class folders,
a .zip or .tar(.gz) of one, or items uploaded class by class.

An imported dataset is a folder `datasets/<id>/` of re-encoded RGB JPEGs under generated names, one
sub-folder per class (plus `unlabeled/` and `docs/` when given), and `dataset.json`. Original bytes
are decoded once and never kept. An import builds everything in a temporary folder that is renamed
at the end, so a failed import leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Mapping, Sequence

from core import settings
from core.data import archives, domains, health, kinds, splits, texts
from core.data.limits import ImportLimits, ProgressFn, Refused, size_words
from core.errors import DatasetError
from core.spec import kinds as spec_kinds
from core.store import quota, runs
from core.store.files import write_json

MIN_IMAGES_TO_IMPORT = 2
# Top folders that mean "these images are already split"; the value is the part they fill.
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
# A top folder of this name holds unlabeled images of the target domain (kept, never trained on).
UNLABELED = "unlabeled"
# Text files at the top of a source (licences, credits) are kept with the dataset as plain text.
_DOC_NAME = re.compile(r"^(license|licence|readme|credits|attribution|copying)(\.(txt|md))?$", re.IGNORECASE)
_MAX_DOC_BYTES = 2**20
_RESERVED_DIRS = (UNLABELED, "docs")
# role "target": images from where the model will be used, imported without labels (folders ignored).
ROLES = ("source", "target")


@dataclass(frozen=True)
class _Entry:
    """One candidate image: its class (None: unlabeled), the name to report, its split part, how to read it."""

    label: str | None
    name: str
    read: Callable[[], bytes]
    part: str | None = None


# ---------------------------------------------------------------- names


def _safe_dir_name(label: str, taken: set[str]) -> str:
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "_", ascii_label.lower()).strip("_")[:40] or "class"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40] or "dataset"


def _label(text: str) -> str:
    # macOS writes names decomposed (NFD): "café" from a Mac and from Windows must be one class.
    return unicodedata.normalize("NFC", text).strip()


# ---------------------------------------------------------------- classes from paths


def _unwrap(scan: archives.Scan) -> tuple[list[tuple[PurePosixPath, Callable[[], bytes]]], set[PurePosixPath]]:
    """Strip single wrapping top folders ("my photos/cats/1.jpg" -> "cats/1.jpg").

    Files lying at the very top (a README beside the wrapping folder) stay where they are.
    """
    files, dirs = scan.files, scan.dirs
    while True:
        nested = [p for p, _ in files if len(p.parts) >= 2]
        tops = {p.parts[0] for p in nested}
        if len(tops) != 1 or not any(len(p.parts) >= 3 for p in nested):
            break
        top = tops.pop()
        if top.lower() in SPLIT_FOLDERS or top.lower() == UNLABELED:
            break
        files = [(PurePosixPath(*p.parts[1:]) if len(p.parts) >= 2 else p, r) for p, r in files]
        dirs = {PurePosixPath(*d.parts[1:]) for d in dirs if len(d.parts) > 1 and d.parts[0] == top}
    return files, dirs


def _not_of_kind(kind: spec_kinds.Kind, suffix: str) -> str:
    """The reason a file of another type is set aside: "not an image file type (.txt)"."""
    article = "an" if kind.item[:1] in "aeiou" else "a"
    return f"not {article} {kind.item} file type ({suffix or 'no extension'})"


def _classify(
    scan: archives.Scan, kind: spec_kinds.Kind,
) -> tuple[list[_Entry], list[tuple[str, Callable[[], bytes]]], bool]:
    """Turn relative paths into entries (class, split part) and kept text documents; True when split is predefined."""
    files, dirs = _unwrap(scan)
    tops = {p.parts[0].lower() for p, _ in files if len(p.parts) >= 2 and p.parts[0].lower() != UNLABELED}
    predefined = (
        bool(tops) and tops <= set(SPLIT_FOLDERS) and "train" in {SPLIT_FOLDERS[t] for t in tops}
        and any(len(p.parts) >= 3 for p, _ in files if p.parts[0].lower() != UNLABELED)
    )
    depth = 2 if predefined else 1  # where the class folders sit
    entries: list[_Entry] = []
    docs: list[tuple[str, Callable[[], bytes]]] = []
    for path, read in files:
        if len(path.parts) == 1 and _DOC_NAME.match(path.name):
            docs.append((path.name, read))
            continue
        unlabeled = len(path.parts) >= 2 and path.parts[0].lower() == UNLABELED
        if not unlabeled and len(path.parts) <= depth:
            where = f" (inside '{path.parts[0]}/' but not in a class folder)" if predefined and len(path.parts) == 2 else ""
            scan.skip(path, "not inside a class folder" + where)
            continue
        if path.suffix.lower() not in kind.extensions:
            scan.skip(path, _not_of_kind(kind, path.suffix))
            continue
        if unlabeled:
            entries.append(_Entry(label=None, name=str(path), read=read))
        elif predefined:
            entries.append(_Entry(label=_label(path.parts[1]), name=str(path), read=read, part=SPLIT_FOLDERS[path.parts[0].lower()]))
        else:
            entries.append(_Entry(label=_label(path.parts[0]), name=str(path), read=read))
    # A class folder with nothing in it is reported, not silently dropped.
    filled = {p.parts[:depth] for p, _ in files}
    for d in sorted(dirs):
        if len(d.parts) == depth and d.parts not in filled and d.parts[0].lower() != UNLABELED:
            if not predefined or d.parts[0].lower() in SPLIT_FOLDERS:
                scan.skip(f"{d}/", "empty folder (no images), so no class was made from it")
    return entries, docs, predefined


# ---------------------------------------------------------------- writing a dataset


def _labels_to_write(entries: list[_Entry], source: str, role: str, keep_labels: bool,
                     words: spec_kinds.Kind) -> list[str]:
    """The classes an import makes, refused in a sentence when a training dataset has fewer than two.

    A target keeps its class folders only with keep_labels (they measure accuracy there, never train)."""
    labels = sorted({e.label for e in entries if e.label is not None})
    if role == "target":
        return labels if keep_labels else []
    if not labels:
        raise DatasetError(
            f"No {words.items} inside class folders were found in {source}; put each class's {words.items} in a folder "
            "named after the class."
        )
    if len(labels) < 2:
        raise DatasetError(
            f"Only one class ('{labels[0]}') was found in {source}; a classifier needs at least two class folders."
        )
    return labels


@dataclass
class _Stored:
    """What an import has written so far into its temporary folder, per class and split part."""

    tmp: Path
    dirs: dict[str, str]  # class -> its folder name
    images: dict[str, list[str]]  # class -> its stored items (relative paths)
    parts: dict[str, list[str]]  # split part -> stored items (predefined splits only)
    unlabeled: list[str]
    item_facts: list[dict]  # the kind's facts, one per labelled stored item
    hashes: dict[str, str]  # stored item -> sha256 of the original file (#n: its nth window)
    room: int | None  # bytes left in the workspace (None: no quota)
    written: int = 0

    @classmethod
    def start(cls, tmp: Path, labels: list[str], any_unlabeled: bool, room: int | None) -> "_Stored":
        taken: set[str] = set(_RESERVED_DIRS)
        dirs = {label: _safe_dir_name(label, taken) for label in labels}
        for label in labels:
            (tmp / dirs[label]).mkdir()
        if any_unlabeled:
            (tmp / UNLABELED).mkdir()
        return cls(tmp=tmp, dirs=dirs, images={label: [] for label in labels}, parts={p: [] for p in splits.PARTS},
                   unlabeled=[], item_facts=[], hashes={}, room=room)

    def counts(self) -> dict[str, int]:
        return {label: len(files) for label, files in self.images.items()}

    def add(self, entry: _Entry, data: bytes, pieces: list[kinds.Stored], ws: Path) -> None:
        """Write one entry's stored items (a long recording may give several windows)."""
        for piece, (suffix, stored, facts) in enumerate(pieces):
            if entry.label is None:
                rel = f"{UNLABELED}/{len(self.unlabeled):05d}{suffix}"
            else:
                rel = f"{self.dirs[entry.label]}/{len(self.images[entry.label]):05d}{suffix}"
            (self.tmp / rel).write_bytes(stored)
            self.written += len(stored)
            settings.fault("import")  # an item written into the temporary folder (import:N: the Nth)
            if self.room is not None and self.written > self.room:
                quota.check_room(ws)  # raises: the items so far already fill the workspace (the folder goes below)
            if entry.label is None:
                self.unlabeled.append(rel)
                continue
            self.images[entry.label].append(rel)
            self.item_facts.append({**facts, "label": entry.label})  # a kind may sum its facts per class (texts)
            digest = hashlib.sha256(data).hexdigest()
            self.hashes[rel] = digest if piece == 0 else f"{digest}#{piece}"  # windows of one file are not copies
            if entry.part:
                self.parts[entry.part].append(rel)


def _store_entries(entries: list[_Entry], out: _Stored, data_kind: kinds.DataKind, skipped: list[dict], ws: Path,
                   limits: ImportLimits, progress: ProgressFn | None,
                   normalise: Callable[[str, bytes, ImportLimits], list[kinds.Stored]] | None = None) -> None:
    """Read every entry and store what its kind's module (or `normalise`, a kind's cutting one) makes of it; a bad
    file is set aside with its sentence."""
    normalise = normalise or data_kind.normalise
    for i, entry in enumerate(entries):
        if progress and i % 20 == 0:
            progress(i / len(entries), f"Checking and storing {data_kind.spec.item} {i + 1:,} of {len(entries):,}")
        try:
            data = entry.read()
            pieces = normalise(entry.name, data, limits)
        except Refused:
            raise
        except DatasetError as exc:
            skipped.append({"file": entry.name, "reason": str(exc)})
            continue
        out.add(entry, data, pieces, ws)


def _check_stored(out: _Stored, labels: list[str], source: str, role: str, predefined: bool,
                  skipped: list[dict], words: spec_kinds.Kind) -> None:
    """Refuse, in a sentence, a dataset too small to use once its readable items are stored."""
    counts = out.counts()
    if role == "target" and len(out.unlabeled) + sum(counts.values()) < domains.MIN_TARGET_IMAGES:
        raise DatasetError(_with_skipped(
            f"{source} holds {len(out.unlabeled) + sum(counts.values())} readable image(s); a set of images from where the model will be used "
            f"needs at least {domains.MIN_TARGET_IMAGES} (a few hundred is best).", skipped))
    too_few = [label for label, n in counts.items() if n < MIN_IMAGES_TO_IMPORT]
    if too_few:
        if len(too_few) == 1:
            what = f"The class '{too_few[0]}' has {counts[too_few[0]]} readable {words.item}(s)"
        else:
            listed = ", ".join(f"'{c}' ({counts[c]})" for c in too_few)
            what = f"The classes {listed} have too few readable {words.items}"
        raise DatasetError(_with_skipped(
            f"{what}; every class needs at least {MIN_IMAGES_TO_IMPORT} (and 100 or more is best).", skipped))
    if predefined:
        in_train = {rel.split("/")[0] for rel in out.parts["train"]}
        missing = [label for label in labels if out.dirs[label] not in in_train]
        if missing:
            raise DatasetError(
                f"The class '{missing[0]}' has no {words.items} in the train folder; every class needs training "
                f"{words.items}."
            )


def _dataset_record(out: _Stored, dataset_id: str, name: str, source: str, labels: list[str], scan: archives.Scan,
                    data_kind: kinds.DataKind, predefined: bool, kept_docs: list[str], role: str,
                    window: float | None = None) -> dict[str, Any]:
    """dataset.json of a stored import, with its duplicates, warnings and health report (`window`: the length
    in seconds long items were cut into, for a kind that cuts them)."""
    counts = out.counts()
    info = {
        "id": dataset_id,
        "name": name,
        "source": source,
        "created": time.time(),
        "kind": data_kind.id,
        "classes": labels,
        "class_dirs": out.dirs,
        "counts": counts,
        "images": out.images,
        **data_kind.record(out.item_facts),  # the kind's own facts (images: "image_sizes")
        **({"window_seconds": window} if window is not None else {}),
        "hashes": out.hashes,
        "predefined_split": out.parts if predefined else None,
        "unlabeled": out.unlabeled,
        "documents": kept_docs,
        "skipped": scan.skipped,
        "ignored_system_files": scan.junk,
        **({"role": "target"} if role == "target" else {}),
    }
    info["duplicates"] = health.find_duplicates(info)
    words = kinds.of(info).spec
    info["warnings"] = (health.health_warnings(counts, words.items)
                        + health.duplicate_warnings(info["duplicates"], words.item))
    info["report"] = health.health_report(info)
    return info


def _write_dataset(
    entries: list[_Entry], scan: archives.Scan, name: str, source: str, ws: Path, limits: ImportLimits,
    predefined: bool = False, docs: Sequence[tuple[str, Callable[[], bytes]]] = (), progress: ProgressFn | None = None,
    role: str = "source", kind: str = spec_kinds.DEFAULT, keep_labels: bool = False,
    notes: Sequence[str] = (), extra: Mapping[str, Any] | None = None, window: float | None = None,
) -> dict[str, Any]:
    """Decode, normalize and write every item (by its kind's module) into a temporary folder, then move it in place.

    A target keeps its class folders only with keep_labels (they measure accuracy there, never train).
    `notes` are sentences about the source kept among the warnings; `extra` fields go into dataset.json.
    `window`: the length in seconds a kind that cuts long items (sounds) cuts them into (None: its default;
    ignored by other kinds); dataset.json keeps it as "window_seconds"."""
    data_kind = kinds.get(kind)
    words = data_kind.spec
    window, normalise = data_kind.cutting(window) if data_kind.cutting else (None, data_kind.normalise)
    labels = _labels_to_write(entries, source, role, keep_labels, words)
    root = ws / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    room = quota.check_room(ws)  # None: no quota (a private computer)
    dataset_id = f"{_slug(name)}-{secrets.token_hex(6)}"
    runs.sweep_scratch(root, ".import-")  # folders of imports whose process was killed
    tmp = Path(tempfile.mkdtemp(prefix=runs.scratch_prefix(".import-"), dir=root))
    try:
        out = _Stored.start(tmp, labels, any(e.label is None for e in entries), room)
        _store_entries(entries, out, data_kind, scan.skipped, ws, limits, progress, normalise)
        _check_stored(out, labels, source, role, predefined, scan.skipped, words)
        kept_docs = _write_docs(docs, tmp, scan.skipped, limits)
        info = _dataset_record(out, dataset_id, name, source, labels, scan, data_kind, predefined, kept_docs, role,
                               window)
        info |= {**(extra or {}), "warnings": [*notes, *info["warnings"]]}
        write_json(tmp / "dataset.json", info)
        quota.check_room(ws)  # the new images are already counted: they sit in the workspace's temporary folder
        if progress:
            progress(1.0, f"Stored {sum(out.counts().values()) + len(out.unlabeled):,} {words.items}")
        os.replace(tmp, root / dataset_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


SKIPPED_NAMED = 5  # set-aside files named in a refusal; the rest are counted


def _with_skipped(message: str, skipped: list[dict]) -> str:
    """A refusal that also says which files were set aside and why (the user's next step is to fix those)."""
    files = [s for s in skipped if not s["file"].endswith("/")]
    if not files:
        return message
    listed = "; ".join(f"{s['file']}: {s['reason']}" for s in files[:SKIPPED_NAMED])
    more = f"; and {len(files) - SKIPPED_NAMED} more" if len(files) > SKIPPED_NAMED else ""
    return f"{message} {len(files)} file(s) were set aside: {listed}{more}."


def _write_docs(docs: Sequence[tuple[str, Callable[[], bytes]]], folder: Path, skipped: list[dict], limits: ImportLimits) -> list[str]:
    """Keep licence and credit files as plain UTF-8 text under docs/ (attribution travels with the images)."""
    kept: list[str] = []
    taken: set[str] = set()
    for name, read in docs:
        try:
            data = read()
        except DatasetError as exc:
            skipped.append({"file": name, "reason": str(exc)})
            continue
        if len(data) > _MAX_DOC_BYTES:
            skipped.append({"file": name, "reason": f"text file larger than {size_words(_MAX_DOC_BYTES)}"})
            continue
        (folder / "docs").mkdir(exist_ok=True)
        rel = f"docs/{_safe_dir_name(Path(name).stem, taken).upper()}.txt"
        (folder / rel).write_text(data.decode("utf-8", errors="replace"), encoding="utf-8")
        kept.append(rel)
    return kept


def import_path(
    src: str | os.PathLike, ws: Path, name: str | None = None, limits: ImportLimits = ImportLimits(), source: str | None = None,
    *, unlabeled: str | os.PathLike | None = None, progress: ProgressFn | None = None, role: str = "source",
    kind: str | None = None, columns: Mapping[str, Any] | None = None, window: float | None = None,
) -> dict[str, Any]:
    """Import a folder of class folders, or a .zip / .tar.gz of one, as a new dataset; returns its dataset.json.
    A .csv / .tsv / .jsonl file is a table of texts (`import_table`; `columns`: its text_column, label_column).

    `source` is what the user knows it by (an upload's file name), when src is a temporary copy.
    `unlabeled` is an optional folder or archive of unlabeled images of the target domain, kept with the dataset.
    `role="target"`: every image under src, in any folders, is an unlabelled image from where the model
    will be used (stored under unlabeled/, no classes; a run adapts to it as its target dataset).
    `kind`: the kind of data (core.spec.kinds); by default the kind most of its files are.
    `window`: sounds: a recording longer than 1.5 windows is cut into windows of this many seconds
    (sounds.WINDOW_RANGE; None: one second); other kinds ignore it.
    """
    src = Path(src)
    source = source or src.name
    _check_role(role, unlabeled)
    if src.is_file() and texts.is_table(src.name) and role == "source":
        table = texts.read_table_file(src, limits, **(columns or {}))
        return import_table(table, ws, name or Path(source).stem, source, limits, progress=progress)
    if role == "target":
        scan = archives.Scan()
        entries, kind = _unlabeled_entries(src, limits, scan, source, kind)
        return _write_dataset(entries, scan, name or Path(source).stem, source, ws, limits, progress=progress,
                              role=role, kind=kind, window=window)
    scan = archives.Scan()
    archives.scan_source(src, source, limits, scan)
    kind = kind or _detect(scan.files)
    entries, docs, predefined = _classify(scan, spec_kinds.get(kind))
    if unlabeled is not None:
        entries += _unlabeled_entries(Path(unlabeled), limits, scan, kind=kind)[0]
    return _write_dataset(entries, scan, name or Path(source).stem, source, ws, limits, predefined, docs, progress,
                          kind=kind, window=window)


def _detect(files: Sequence[tuple[PurePosixPath, Callable[[], bytes]]]) -> str:
    """The kind of data most of these files are (images when nothing decides)."""
    return kinds.detect([(str(path), read) for path, read in files])


def _names_classes(scan: archives.Scan, classes: Sequence[str]) -> bool:
    """Whether a target's top folders (under any wrapping folder) are named like some training classes."""
    if not classes:
        return False
    files, _ = _unwrap(scan)
    tops = {_label(p.parts[0]).casefold() for p, _ in files if len(p.parts) >= 2}
    return bool(tops & {_label(c).casefold() for c in classes})


def _check_role(role: str, unlabeled: Any = None) -> None:
    if role not in ROLES:
        raise DatasetError(f"Unknown dataset role '{role}'; choose one of {', '.join(ROLES)}.")
    if role == "target" and unlabeled is not None:
        raise DatasetError("A target import is all unlabelled images already; give the folder once, without --unlabeled.")


def import_server_folder(src: str | os.PathLike, ws: Path, **kwargs: Any) -> dict[str, Any]:
    """`import_path` for a path a visitor typed: refused on a shared server, where it could read anyone's files."""
    if settings.hosted():
        raise DatasetError("Importing from a folder on the server is switched off on this shared server; "
                           "upload a zip of class folders instead.")
    return import_path(src, ws, **kwargs)


def import_upload(
    fileobj: IO[bytes], filename: str, ws: Path, name: str | None = None, limits: ImportLimits = ImportLimits(),
    *, progress: ProgressFn | None = None, role: str = "source", kind: str | None = None,
    classes: Sequence[str] = (), columns: Mapping[str, Any] | None = None, window: float | None = None,
) -> dict[str, Any]:
    """Import an uploaded .zip (or a .csv / .tsv / .jsonl table of texts, `columns` as for import_path) given as an open binary file (nothing is written outside the new dataset).

    `role="target"`: its items are from where the model will be used. Where its folders are named like
    `classes` (the training dataset's), they stay class folders, used only to measure accuracy there; otherwise
    every item is kept without a label, whatever its folders.
    `kind`: the kind of data (core.spec.kinds); by default the kind most of its files are.
    `window`: the length long recordings are cut into, as for import_path.
    """
    _check_role(role)
    if texts.is_table(filename) and role == "source":
        table = texts.read_table(filename, fileobj.read(limits.max_file_bytes + 1), limits, **(columns or {}))
        return import_table(table, ws, name or Path(filename).stem, filename, limits, progress=progress)
    scan = archives.Scan()
    archives.scan_zip(archives.open_zip(fileobj, filename), filename, limits, scan)
    kind = kind or _detect(scan.files)
    if role == "target" and _names_classes(scan, classes):
        entries, docs, predefined = _classify(scan, spec_kinds.get(kind))
        return _write_dataset(entries, scan, name or Path(filename).stem, filename, ws, limits, predefined, docs,
                              progress, role=role, kind=kind, keep_labels=True, window=window)
    if role == "target":
        entries = _as_unlabeled(scan.files, scan, spec_kinds.get(kind))
        return _write_dataset(entries, scan, name or Path(filename).stem, filename, ws, limits, progress=progress,
                              role=role, kind=kind, window=window)
    entries, docs, predefined = _classify(scan, spec_kinds.get(kind))
    return _write_dataset(entries, scan, name or Path(filename).stem, filename, ws, limits, predefined, docs, progress,
                          kind=kind, window=window)


def import_table(table: texts.Table, ws: Path, name: str, source: str, limits: ImportLimits,
                 progress: ProgressFn | None = None) -> dict[str, Any]:
    """A table of texts read by `texts.read_table` as a dataset of texts: one stored text per row, its rows set
    aside kept with their reasons, a `split` column kept as the predefined split."""
    scan = archives.Scan()
    scan.skipped += table.skipped
    entries = [_Entry(label=_label(label), name=where, read=lambda t=text: t.encode("utf-8"), part=part)
               for label, text, part, where in table.rows]
    predefined = any(part for _, _, part, _ in table.rows)  # with a split column every kept row has its part
    return _write_dataset(entries, scan, name, source, ws, limits, predefined, progress=progress,
                          kind=texts.KIND, notes=table.notes, extra={"columns": table.columns})


def _unlabeled_entries(src: Path, limits: ImportLimits, scan: archives.Scan, source: str | None = None,
                       kind: str | None = None) -> tuple[list[_Entry], str]:
    """Every item under a folder or archive, as unlabeled entries (their folders do not matter), and their kind."""
    inner = archives.Scan()
    archives.scan_source(src, source or src.name, limits, inner)
    scan.skipped += [{"file": f"{UNLABELED}/{s['file']}", "reason": s["reason"]} for s in inner.skipped]
    scan.junk += inner.junk
    if len(scan.files) + len(inner.files) > limits.max_members:
        raise Refused(f"The labeled and unlabeled images together are more than {limits.max_members:,} files; import fewer.")
    kind = kind or _detect(inner.files)
    return _as_unlabeled(inner.files, scan, spec_kinds.get(kind)), kind


def _as_unlabeled(files: list[tuple[PurePosixPath, Callable[[], bytes]]], scan: archives.Scan,
                  kind: spec_kinds.Kind) -> list[_Entry]:
    entries = []
    for path, read in files:
        name = f"{UNLABELED}/{path}"
        if path.suffix.lower() in kind.extensions:
            entries.append(_Entry(label=None, name=name, read=read))
        elif not _DOC_NAME.match(path.name):
            scan.skip(name, _not_of_kind(kind, path.suffix))
    return entries


# An uploaded file: its name, and its bytes or a function returning them (read only when stored).
Upload = tuple[str, bytes | Callable[[], bytes]]


def import_classes(
    classes: Mapping[str, Sequence[Upload]] | Sequence[tuple[str, Sequence[Upload]]], ws: Path, name: str,
    limits: ImportLimits = ImportLimits(), *, unlabeled: Sequence[Upload] = (), progress: ProgressFn | None = None,
    kind: str | None = None, window: float | None = None,
) -> dict[str, Any]:
    """Import images uploaded class by class, {class name: [(file name, bytes or a reader)]}, as a new dataset.

    Classes may also come as (name, files) pairs, so that two classes given the same name are refused, not merged.
    `window`: the length long recordings (uploaded or recorded) are cut into, as for import_path.
    """
    pairs = list(classes.items()) if isinstance(classes, Mapping) else list(classes)
    words = spec_kinds.get(kind or kinds.detect([(f, lambda d=d: d() if callable(d) else d)
                                                 for _, files in pairs for f, d in files]))
    labels = [_label(c) for c, _ in pairs]
    groups_in = [files for _, files in pairs]
    for index, label in enumerate(labels):
        if not label:
            raise DatasetError(f"Class {index + 1} has no name; give every class a name.")
    folded = [label.casefold() for label in labels]
    twice = next((label for label, f in zip(labels, folded) if folded.count(f) > 1), None)
    if twice is not None:
        raise DatasetError(f"Two classes are both named '{twice}'; give every class its own name.")
    if len(labels) < 2:
        raise DatasetError(f"A classifier needs at least two classes; add another class and its {words.items}.")
    empty = next((label for label, files in zip(labels, groups_in) if not files), None)
    if empty is not None:
        raise DatasetError(f"The class '{empty}' has no {words.items} yet; upload at least {MIN_IMAGES_TO_IMPORT} "
                           "or delete the class.")
    total = sum(len(files) for files in groups_in) + len(unlabeled)
    if total > limits.max_members:
        raise Refused(f"{total:,} files were uploaded, more than the limit of {limits.max_members:,}; upload fewer.")
    no_images = next((label for label, files in zip(labels, groups_in)
                      if not any(PurePosixPath(f).suffix.lower() in words.extensions for f, _ in files)), None)
    if no_images is not None:
        raise DatasetError(
            f"The class '{no_images}' has no {words.item} files ({words.formats_words}); upload some or delete the "
            "class."
        )
    scan = archives.Scan()
    entries: list[_Entry] = []
    groups = [*zip(labels, groups_in), (None, unlabeled)]
    for label, files in groups:
        for filename, data in files:
            shown = f"{label if label is not None else UNLABELED}/{filename}"
            if PurePosixPath(filename).suffix.lower() not in words.extensions:
                scan.skip(shown, _not_of_kind(words, PurePosixPath(filename).suffix))
                continue
            entries.append(_Entry(label=label, name=shown, read=_upload_reader(data, limits)))
    return _write_dataset(entries, scan, name.strip() or "my classes", f"{words.items} uploaded per class", ws, limits,
                          progress=progress, kind=words.id, window=window)


def _upload_reader(data: bytes | Callable[[], bytes], limits: ImportLimits) -> Callable[[], bytes]:
    def read() -> bytes:
        raw = data() if callable(data) else data
        if len(raw) > limits.max_file_bytes:
            raise DatasetError(archives.too_large(limits))
        return raw

    return read
