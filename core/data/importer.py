"""Datasets: import, normalization, health report, stratified or predefined split, tf.data pipelines.

Ways in: a folder of class folders, a .zip or .tar(.gz) of one, images uploaded class by class,
and built-in samples (the generated `shapes`; `flowers`, downloaded from TensorFlow's archive).
An imported dataset is a folder `datasets/<id>/` of re-encoded RGB JPEGs under generated names,
one sub-folder per class (plus `unlabeled/` and `docs/` when given), and `dataset.json`.
Original bytes are decoded once and never kept. Archives are read member by member, never
extracted. An import builds everything in a temporary folder that is renamed at the end, so a
failed import leaves nothing. TensorFlow is imported only by the pipeline and augmentation
preview functions, so the Data page stays light.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import statistics
import tarfile
import tempfile
import time
import unicodedata
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from core import hosting
from core.config import AugmentConfig, RunConfig
from core.errors import DatasetError
from core.runs import read_json, write_json

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")
MAX_STORED_SIDE = 1024  # larger photos are scaled down on import; no backbone needs more
MIN_IMAGES_TO_IMPORT = 2
MIN_IMAGES_TO_TRAIN = 10
ADVISED_IMAGES = 100
IMBALANCE_WARNING = 3.0  # largest class / smallest class
SMALL_SIDE = 64  # images whose shorter side is below this carry little detail
_DATASET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}-[0-9a-f]{8,12}$")

# Top folders that mean "these images are already split"; the value is the part they fill.
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
PARTS = ("train", "val", "test")
# A top folder of this name holds unlabeled images of the target domain (kept, never trained on).
UNLABELED = "unlabeled"
# Operating-system clutter in archives and folders: counted, not listed one by one.
_JUNK_NAMES = ("__macosx", "thumbs.db", "desktop.ini")
# Text files at the top of a source (licences, credits) are kept with the dataset as plain text.
_DOC_NAME = re.compile(r"^(license|licence|readme|credits|attribution|copying)(\.(txt|md))?$", re.IGNORECASE)
_MAX_DOC_BYTES = 2**20
_RESERVED_DIRS = (UNLABELED, "docs")

# The split the health report shows when nothing else is chosen: the RunConfig defaults.
_DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.name in ("val_fraction", "test_fraction", "seed")}

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class ImportLimits:
    """Caps that make a hostile archive fail with a sentence instead of filling the disk."""

    max_members: int = 20_000
    max_file_bytes: int = 50 * 2**20
    max_total_bytes: int = 2 * 2**30
    max_ratio: float = 100.0  # uncompressed / compressed, per member
    max_pixels: int = 50_000_000  # Pillow's decompression-bomb guard, made an error
    # The ratio is checked only above this size: a tiny plain image legitimately packs very well,
    # and below it the per-file and total caps already bound what an expansion can cost.
    ratio_floor_bytes: int = 2**20

    @classmethod
    def from_env(cls) -> "ImportLimits":
        """The defaults, overridden by TL_IMPORT_MAX_MEMBERS, _MAX_FILE_MB, _MAX_TOTAL_MB, _MAX_RATIO, _MAX_PIXELS."""
        names = {"max_members": ("TL_IMPORT_MAX_MEMBERS", 1), "max_file_bytes": ("TL_IMPORT_MAX_FILE_MB", 2**20),
                 "max_total_bytes": ("TL_IMPORT_MAX_TOTAL_MB", 2**20), "max_ratio": ("TL_IMPORT_MAX_RATIO", 1),
                 "max_pixels": ("TL_IMPORT_MAX_PIXELS", 1)}
        values: dict[str, Any] = {}
        for key, (env, unit) in names.items():
            number = hosting.env_number(env, None, DatasetError)
            if number is not None:
                values[key] = number * unit if key == "max_ratio" else int(number * unit)
        return cls(**values)


class _Refused(DatasetError):
    """A source-wide refusal (unsafe path, bomb, over a cap): the whole import stops."""


@dataclass(frozen=True)
class _Entry:
    """One candidate image: its class (None: unlabeled), the name to report, its split part, how to read it."""

    label: str | None
    name: str
    read: Callable[[], bytes]
    part: str | None = None


@dataclass
class _Scan:
    """What a source holds: candidate files with bounded readers, folders, and what was set aside."""

    files: list[tuple[PurePosixPath, Callable[[], bytes]]] = field(default_factory=list)
    dirs: set[PurePosixPath] = field(default_factory=set)
    skipped: list[dict[str, str]] = field(default_factory=list)
    junk: int = 0

    def skip(self, name: object, reason: str) -> None:
        self.skipped.append({"file": str(name), "reason": reason})


# ---------------------------------------------------------------- normalization


def _bomb(limits: ImportLimits) -> DatasetError:
    return DatasetError(f"the image is larger than {limits.max_pixels:,} pixels (a possible decompression bomb)")


def _decode(data: bytes, limits: ImportLimits) -> tuple[Image.Image, tuple[int, int]]:
    """Open and load an image with the pixel cap checked from the header, before any pixel is decoded."""
    with warnings.catch_warnings():
        # Pillow's own guard becomes an error; our (lower) cap is checked from the header,
        # without touching Pillow's process-wide limit.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            size = img.size
            if size[0] * size[1] > limits.max_pixels:
                raise _bomb(limits)
            if img.format == "JPEG" and max(size) >= 2 * MAX_STORED_SIDE:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the stored size:
                # a 12-megapixel photo then costs a fraction of a full decode.
                scale = MAX_STORED_SIDE / max(size)
                img.draft(None, (math.ceil(size[0] * scale), math.ceil(size[1] * scale)))
            img.load()
        except DatasetError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb(limits) from None
        except Image.UnidentifiedImageError:
            raise DatasetError("not a readable image (not a picture format that can be read)") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
            cut = any(word in str(exc).lower() for word in ("truncated", "broken data stream"))
            detail = "the file is cut short or damaged" if cut else f"the file is damaged: {type(exc).__name__}"
            raise DatasetError(f"not a readable image ({detail})") from None
    return img, size


def normalize_image(data: bytes, limits: ImportLimits = ImportLimits()) -> tuple[Image.Image, tuple[int, int]]:
    """Decode bytes into an upright RGB image (EXIF applied, alpha over white); returns it and its original size."""
    img, size = _decode(data, limits)
    try:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            white = Image.new("RGB", rgba.size, (255, 255, 255))
            white.paste(rgba, mask=rgba.getchannel("A"))
            img = white
        elif img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            # 16-bit grayscale: scale to 8 bits instead of clipping everything to white.
            arr = np.asarray(img, dtype=np.float64)
            peak = arr.max() or 1.0
            img = Image.fromarray((np.clip(arr, 0, None) * (255.0 / peak)).astype(np.uint8)).convert("RGB")
        else:
            img = img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - odd colour modes or EXIF can fail in many ways
        raise DatasetError(f"not a readable image (its colours could not be converted: {type(exc).__name__})") from None
    if max(img.size) > MAX_STORED_SIDE:
        img.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE), Image.Resampling.LANCZOS)
    return img, size


def load_image_array(data: bytes, image_size: int) -> np.ndarray:
    """An image file's bytes as a float32 (size, size, 3) array of 0-255 pixels, as training sees them."""
    import tensorflow as tf

    img, _ = normalize_image(data)
    arr = tf.image.resize(np.asarray(img, dtype=np.float32), (image_size, image_size))
    return arr.numpy()


def thumbnail(path: Path, side: int = 160) -> bytes:
    """A small square JPEG (centre crop) of a stored image, for galleries (never the original upload)."""
    with Image.open(path) as img:
        img.draft("RGB", (side, side))
        img = ImageOps.fit(img.convert("RGB"), (side, side), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


# ---------------------------------------------------------------- reading sources


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


def _check_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[a-zA-Z]:", name) or ".." in path.parts:
        raise _Refused(f"The archive entry '{name}' points outside the archive; the archive was refused as unsafe.")
    return PurePosixPath(*(p for p in path.parts if p not in ("", ".")))


def _is_junk(path: PurePosixPath) -> bool:
    return any(part.startswith(".") or part.lower() in _JUNK_NAMES for part in path.parts)


def _mb(n: int) -> str:
    """A size in words: 2.0 GB, 50 MB, 300 KB, 12 bytes."""
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}" if unit == "GB" else f"{n / size:,.0f} {unit}"
    return f"{n} bytes"


def _too_large(limits: ImportLimits) -> str:
    return f"larger than {_mb(limits.max_file_bytes)}"


def _check_total(total: int, source: str, limits: ImportLimits) -> None:
    if total > limits.max_total_bytes:
        raise _Refused(f"'{source}' expands to more than {_mb(limits.max_total_bytes)}; import a smaller set.")


def _check_ratio(what: str, size: int, packed: int, limits: ImportLimits) -> None:
    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(packed, 1):
        raise _Refused(
            f"{what} expands {size / max(packed, 1):,.0f} times, more than the limit of "
            f"{limits.max_ratio:.0f}; the archive was refused as a possible zip bomb."
        )


def _bounded(read: Callable[[int], bytes], limits: ImportLimits) -> bytes:
    # Never trust a declared size alone: read one byte past the cap and look.
    data = read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise DatasetError(_too_large(limits))
    return data


def _scan_zip(zf: zipfile.ZipFile, source: str, limits: ImportLimits, scan: _Scan) -> None:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise _Refused(
            f"'{source}' holds {len(infos):,} entries, more than the limit of {limits.max_members:,}; split it into smaller zips."
        )
    total = 0
    for info in infos:
        path = _check_member_path(info.filename)
        if not path.parts:
            continue
        if _is_junk(path):
            scan.junk += not info.is_dir()
            continue
        if info.is_dir():
            scan.dirs.add(path)
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            scan.skip(path, "symbolic link (not followed)")
            continue
        if path.suffix.lower() in ARCHIVE_SUFFIXES:
            scan.skip(path, "archive inside the archive (not opened); upload it on its own")
            continue
        if info.flag_bits & 0x1:
            scan.skip(path, "password-protected entry (cannot be read)")
            continue
        if info.file_size > limits.max_file_bytes:
            scan.skip(path, _too_large(limits))
            continue
        _check_ratio(f"The archive entry '{info.filename}'", info.file_size, info.compress_size, limits)
        total += info.file_size
        _check_total(total, source, limits)

        def read(info: zipfile.ZipInfo = info) -> bytes:
            try:
                with zf.open(info) as f:
                    data = _bounded(f.read, limits)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError):
                raise DatasetError("damaged entry in the archive (could not be unpacked)") from None
            _check_ratio(f"The archive entry '{info.filename}'", len(data), info.compress_size, limits)
            return data

        scan.files.append((path, read))


def _scan_tar(tar: tarfile.TarFile, source: str, packed: int, limits: ImportLimits, scan: _Scan) -> None:
    count = total = 0
    # Iterating reads one header at a time, so the member cap stops a header flood early.
    for member in tar:
        count += 1
        if count > limits.max_members:
            raise _Refused(
                f"'{source}' holds more than {limits.max_members:,} entries, the limit; split it into smaller archives."
            )
        path = _check_member_path(member.name)
        if not path.parts:
            continue
        if _is_junk(path):
            scan.junk += not member.isdir()
            continue
        if member.isdir():
            scan.dirs.add(path)
            continue
        if member.issym() or member.islnk():
            scan.skip(path, "symbolic link (not followed)")
            continue
        if not member.isfile() or member.issparse():
            scan.skip(path, "not a regular file")
            continue
        if path.suffix.lower() in ARCHIVE_SUFFIXES:
            scan.skip(path, "archive inside the archive (not opened); upload it on its own")
            continue
        if member.size > limits.max_file_bytes:
            scan.skip(path, _too_large(limits))
            continue
        total += member.size
        _check_total(total, source, limits)

        def read(member: tarfile.TarInfo = member) -> bytes:
            try:
                f = tar.extractfile(member)
                if f is None:
                    raise DatasetError("not a regular file")
                with f:
                    return _bounded(f.read, limits)
            except (tarfile.TarError, zlib.error, EOFError, OSError):
                raise DatasetError("damaged entry in the archive (could not be unpacked)") from None

        scan.files.append((path, read))
    # A compressed tar has one stream: its overall expansion is what a bomb inflates.
    _check_ratio(f"'{source}'", total, packed, limits)


def _scan_folder(src: Path, limits: ImportLimits, scan: _Scan) -> None:
    count = total = 0
    for path in sorted(src.rglob("*")):
        rel = PurePosixPath(path.relative_to(src).as_posix())
        if _is_junk(rel):
            scan.junk += path.is_file()
            continue
        if path.is_symlink():
            scan.skip(rel, "symbolic link (not followed)")
            continue
        if path.is_dir():
            scan.dirs.add(rel)
            continue
        if not path.is_file():
            scan.skip(rel, "not a regular file")
            continue
        count += 1
        if count > limits.max_members:
            raise _Refused(f"'{src}' holds more than {limits.max_members:,} files; import a smaller folder.")
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            scan.skip(rel, _too_large(limits))
            continue
        total += size
        _check_total(total, str(src), limits)

        def read(path: Path = path) -> bytes:
            with path.open("rb") as f:
                return _bounded(f.read, limits)

        scan.files.append((rel, read))


def zip_entries(src: Path, limits: ImportLimits, skipped: list[dict]) -> list[tuple[PurePosixPath, Callable[[], bytes]]]:
    """The files of a zip as (path, bounded reader), with unsafe zips refused and set-aside files listed."""
    scan = _Scan(skipped=skipped)
    _scan_zip(_open_zip(src, Path(src).name), Path(src).name, limits, scan)
    return scan.files


def _open_zip(src: Path | IO[bytes], name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise DatasetError(f"'{name}' is not a readable zip file; re-create it and upload again.") from None


def _scan_source(src: Path, label: str, limits: ImportLimits, scan: _Scan) -> None:
    """Fill a scan from a folder, a .zip or a .tar(.gz); DatasetError for anything else."""
    lower = src.name.lower()
    if src.is_dir():
        _scan_folder(src, limits, scan)
    elif src.is_file() and lower.endswith(".zip"):
        _scan_zip(_open_zip(src, label), label, limits, scan)
    elif src.is_file() and lower.endswith(TAR_SUFFIXES):
        try:
            tar = tarfile.open(src, "r:*")
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            raise DatasetError(f"'{label}' is not a readable tar archive; re-create it and try again.") from None
        try:
            _scan_tar(tar, label, src.stat().st_size, limits, scan)
        except (tarfile.TarError, EOFError, zlib.error, OSError):
            raise DatasetError(f"'{label}' is damaged (it ends early or is not a tar archive); re-create it.") from None
    elif src.exists():
        raise DatasetError(
            f"'{src.name}' is neither a folder, a .zip nor a .tar.gz file; give a folder of class folders or an archive of one."
        )
    else:
        raise DatasetError(f"'{src}' does not exist; check the path.")


# ---------------------------------------------------------------- classes from paths


def _unwrap(scan: _Scan) -> tuple[list[tuple[PurePosixPath, Callable[[], bytes]]], set[PurePosixPath]]:
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


def _classify(scan: _Scan) -> tuple[list[_Entry], list[tuple[str, Callable[[], bytes]]], bool]:
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
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            scan.skip(path, f"not an image file type ({path.suffix or 'no extension'})")
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


def _write_dataset(
    entries: list[_Entry], scan: _Scan, name: str, source: str, ws: Path, limits: ImportLimits,
    predefined: bool = False, docs: Sequence[tuple[str, Callable[[], bytes]]] = (), progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Decode, normalize and write every image into a temporary folder, then rename it into place."""
    skipped = scan.skipped
    labels = sorted({e.label for e in entries if e.label is not None})
    if not labels:
        raise DatasetError(
            f"No images inside class folders were found in {source}; put each class's images in a folder named after the class."
        )
    if len(labels) < 2:
        raise DatasetError(
            f"Only one class ('{labels[0]}') was found in {source}; a classifier needs at least two class folders."
        )
    root = ws / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    room = hosting.check_room(ws)  # None: no quota (a private computer)
    written = 0
    dataset_id = f"{_slug(name)}-{secrets.token_hex(6)}"
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    try:
        taken: set[str] = set(_RESERVED_DIRS)
        dirs = {label: _safe_dir_name(label, taken) for label in labels}
        images: dict[str, list[str]] = {label: [] for label in labels}
        parts: dict[str, list[str]] = {p: [] for p in PARTS}
        unlabeled: list[str] = []
        sizes: list[list[int]] = []
        hashes: dict[str, str] = {}
        for label in labels:
            (tmp / dirs[label]).mkdir()
        if any(e.label is None for e in entries):
            (tmp / UNLABELED).mkdir()
        for i, entry in enumerate(entries):
            if progress and i % 20 == 0:
                progress(i / len(entries), f"Checking and storing image {i + 1:,} of {len(entries):,}")
            try:
                data = entry.read()
                img, size = normalize_image(data, limits)
            except _Refused:
                raise
            except DatasetError as exc:
                skipped.append({"file": entry.name, "reason": str(exc)})
                continue
            if entry.label is None:
                rel = f"{UNLABELED}/{len(unlabeled):05d}.jpg"
            else:
                rel = f"{dirs[entry.label]}/{len(images[entry.label]):05d}.jpg"
            img.save(tmp / rel, "JPEG", quality=92)
            written += (tmp / rel).stat().st_size
            if room is not None and written > room:
                hosting.check_room(ws)  # raises: the images so far already fill the workspace (the folder goes below)
            if entry.label is None:
                unlabeled.append(rel)
                continue
            images[entry.label].append(rel)
            sizes.append(list(size))
            hashes[rel] = hashlib.sha256(data).hexdigest()
            if entry.part:
                parts[entry.part].append(rel)
        counts = {label: len(files) for label, files in images.items()}
        too_few = [label for label, n in counts.items() if n < MIN_IMAGES_TO_IMPORT]
        if too_few:
            raise DatasetError(
                f"The class '{too_few[0]}' has {counts[too_few[0]]} readable image(s); every class needs at least "
                f"{MIN_IMAGES_TO_IMPORT} (and 100 or more is best)."
            )
        if predefined:
            in_train = {rel.split("/")[0] for rel in parts["train"]}
            missing = [label for label in labels if dirs[label] not in in_train]
            if missing:
                raise DatasetError(
                    f"The class '{missing[0]}' has no images in the train folder; every class needs training images."
                )
        kept_docs = _write_docs(docs, tmp, skipped, limits)
        info = {
            "id": dataset_id,
            "name": name,
            "source": source,
            "created": time.time(),
            "classes": labels,
            "class_dirs": dirs,
            "counts": counts,
            "images": images,
            "image_sizes": sizes,
            "hashes": hashes,
            "predefined_split": parts if predefined else None,
            "unlabeled": unlabeled,
            "documents": kept_docs,
            "skipped": skipped,
            "ignored_system_files": scan.junk,
        }
        info["duplicates"] = find_duplicates(info)
        info["warnings"] = health_warnings(counts) + duplicate_warnings(info["duplicates"])
        info["report"] = health_report(info)
        write_json(tmp / "dataset.json", info)
        hosting.check_room(ws)  # the new images are already counted: they sit in the workspace's temporary folder
        if progress:
            progress(1.0, f"Stored {sum(counts.values()):,} images")
        os.replace(tmp, root / dataset_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


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
            skipped.append({"file": name, "reason": f"text file larger than {_mb(_MAX_DOC_BYTES)}"})
            continue
        (folder / "docs").mkdir(exist_ok=True)
        rel = f"docs/{_safe_dir_name(Path(name).stem, taken).upper()}.txt"
        (folder / rel).write_text(data.decode("utf-8", errors="replace"), encoding="utf-8")
        kept.append(rel)
    return kept


def import_path(
    src: str | os.PathLike, ws: Path, name: str | None = None, limits: ImportLimits = ImportLimits(), source: str | None = None,
    *, unlabeled: str | os.PathLike | None = None, progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Import a folder of class folders, or a .zip / .tar.gz of one, as a new dataset; returns its dataset.json.

    `source` is what the user knows it by (an upload's file name), when src is a temporary copy.
    `unlabeled` is an optional folder or archive of unlabeled images of the target domain, kept with the dataset.
    """
    src = Path(src)
    source = source or src.name
    scan = _Scan()
    _scan_source(src, source, limits, scan)
    entries, docs, predefined = _classify(scan)
    if unlabeled is not None:
        entries += _unlabeled_entries(Path(unlabeled), limits, scan)
    return _write_dataset(entries, scan, name or Path(source).stem, source, ws, limits, predefined, docs, progress)


def import_server_folder(src: str | os.PathLike, ws: Path, **kwargs: Any) -> dict[str, Any]:
    """`import_path` for a path a visitor typed: refused on a shared server, where it could read anyone's files."""
    if hosting.enabled():
        raise DatasetError("Importing from a folder on the server is switched off on this shared server; "
                           "upload a zip of class folders instead.")
    return import_path(src, ws, **kwargs)


def import_upload(
    fileobj: IO[bytes], filename: str, ws: Path, name: str | None = None, limits: ImportLimits = ImportLimits(),
    *, progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Import an uploaded .zip given as an open binary file (nothing is written outside the new dataset)."""
    scan = _Scan()
    _scan_zip(_open_zip(fileobj, filename), filename, limits, scan)
    entries, docs, predefined = _classify(scan)
    return _write_dataset(entries, scan, name or Path(filename).stem, filename, ws, limits, predefined, docs, progress)


def _unlabeled_entries(src: Path, limits: ImportLimits, scan: _Scan) -> list[_Entry]:
    """Every image under a folder or archive, as unlabeled entries (their folders do not matter)."""
    inner = _Scan()
    _scan_source(src, src.name, limits, inner)
    scan.skipped += [{"file": f"{UNLABELED}/{s['file']}", "reason": s["reason"]} for s in inner.skipped]
    scan.junk += inner.junk
    if len(scan.files) + len(inner.files) > limits.max_members:
        raise _Refused(f"The labeled and unlabeled images together are more than {limits.max_members:,} files; import fewer.")
    entries = []
    for path, read in inner.files:
        name = f"{UNLABELED}/{path}"
        if path.suffix.lower() in IMAGE_SUFFIXES:
            entries.append(_Entry(label=None, name=name, read=read))
        else:
            scan.skip(name, f"not an image file type ({path.suffix or 'no extension'})")
    return entries


# An uploaded file: its name, and its bytes or a function returning them (read only when stored).
Upload = tuple[str, bytes | Callable[[], bytes]]


def import_classes(
    classes: Mapping[str, Sequence[Upload]] | Sequence[tuple[str, Sequence[Upload]]], ws: Path, name: str,
    limits: ImportLimits = ImportLimits(), *, unlabeled: Sequence[Upload] = (), progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Import images uploaded class by class, {class name: [(file name, bytes or a reader)]}, as a new dataset.

    Classes may also come as (name, files) pairs, so that two classes given the same name are refused, not merged.
    """
    pairs = list(classes.items()) if isinstance(classes, Mapping) else list(classes)
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
        raise DatasetError("A classifier needs at least two classes; add another class and its images.")
    empty = next((label for label, files in zip(labels, groups_in) if not files), None)
    if empty is not None:
        raise DatasetError(f"The class '{empty}' has no images yet; upload at least {MIN_IMAGES_TO_IMPORT} or delete the class.")
    total = sum(len(files) for files in groups_in) + len(unlabeled)
    if total > limits.max_members:
        raise _Refused(f"{total:,} files were uploaded, more than the limit of {limits.max_members:,}; upload fewer.")
    no_images = next((label for label, files in zip(labels, groups_in)
                      if not any(PurePosixPath(f).suffix.lower() in IMAGE_SUFFIXES for f, _ in files)), None)
    if no_images is not None:
        raise DatasetError(
            f"The class '{no_images}' has no image files (JPEG, PNG, BMP, GIF, WebP or TIFF); upload some or delete the class."
        )
    scan = _Scan()
    entries: list[_Entry] = []
    groups = [*zip(labels, groups_in), (None, unlabeled)]
    for label, files in groups:
        for filename, data in files:
            shown = f"{label if label is not None else UNLABELED}/{filename}"
            if PurePosixPath(filename).suffix.lower() not in IMAGE_SUFFIXES:
                scan.skip(shown, f"not an image file type ({PurePosixPath(filename).suffix or 'no extension'})")
                continue
            entries.append(_Entry(label=label, name=shown, read=_upload_reader(data, limits)))
    return _write_dataset(entries, scan, name.strip() or "my classes", "images uploaded per class", ws, limits, progress=progress)


def _upload_reader(data: bytes | Callable[[], bytes], limits: ImportLimits) -> Callable[[], bytes]:
    def read() -> bytes:
        raw = data() if callable(data) else data
        if len(raw) > limits.max_file_bytes:
            raise DatasetError(_too_large(limits))
        return raw

    return read


# ---------------------------------------------------------------- health report


def health_warnings(counts: dict[str, int]) -> list[str]:
    """Plain sentences about class sizes and balance."""
    out = []
    for label, n in sorted(counts.items()):
        if n < MIN_IMAGES_TO_TRAIN:
            out.append(f"Class '{label}' has only {n} images; add at least {MIN_IMAGES_TO_TRAIN} before training.")
        elif n < ADVISED_IMAGES:
            out.append(f"Class '{label}' has {n} images; 100 or more per class usually gives a more reliable model.")
    if counts and min(counts.values()) and max(counts.values()) / min(counts.values()) >= IMBALANCE_WARNING:
        out.append(
            f"The classes are imbalanced ({max(counts.values())} vs {min(counts.values())} images); "
            "class weights will balance their influence during training."
        )
    return out


def find_duplicates(info: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Exact copies (same original bytes) within one class, and across classes (label conflicts)."""
    label_of = {rel: label for label in info["classes"] for rel in info["images"][label]}
    groups: dict[str, list[str]] = {}
    for rel, digest in info.get("hashes", {}).items():
        if rel in label_of:
            groups.setdefault(digest, []).append(rel)
    within, across = [], []
    for files in groups.values():
        if len(files) < 2:
            continue
        files = sorted(files)
        classes = sorted({label_of[f] for f in files}, key=info["classes"].index)
        group = {"classes": classes, "files": files}
        (across if len(classes) > 1 else within).append(group)
    return {"within": within, "across": across}


def duplicate_warnings(duplicates: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Plain sentences about exact copies."""
    out = []
    extra = sum(len(g["files"]) - 1 for g in duplicates["within"])
    if extra:
        out.append(
            f"{extra} image(s) are exact copies of another image in the same class; copies count twice and can "
            "land in both training and test, which flatters the test accuracy."
        )
    if duplicates["across"]:
        out.append(
            f"{len(duplicates['across'])} image(s) appear in more than one class (label conflicts); "
            "look at them in the health report and remove the copies with the wrong label."
        )
    return out


def split_counts(info: dict[str, Any], parts: dict[str, list[tuple[str, int]]]) -> dict[str, dict[str, int]]:
    """Images per class in each part of a split: {class: {"train": n, "val": n, "test": n}}."""
    out = {label: {p: 0 for p in PARTS} for label in info["classes"]}
    for part in PARTS:
        for _, index in parts[part]:
            out[info["classes"][index]][part] += 1
    return out


def health_report(
    info: dict[str, Any], val_fraction: float = _DEFAULTS["val_fraction"], test_fraction: float = _DEFAULTS["test_fraction"],
    seed: int = _DEFAULTS["seed"],
) -> dict[str, Any]:
    """Everything the health report shows, from a dataset.json (works for datasets imported before it existed)."""
    counts = info["counts"]
    largest, smallest = max(counts.values()), min(counts.values())
    ratio = largest / max(smallest, 1)
    sizes = info.get("image_sizes", [])
    widths, heights = [s[0] for s in sizes], [s[1] for s in sizes]
    duplicates = find_duplicates(info)
    try:
        parts = split(info, val_fraction, test_fraction, seed)
        split_info: dict[str, Any] = {"counts": split_counts(info, parts), "problem": None}
    except DatasetError as exc:
        split_info = {"counts": None, "problem": str(exc)}
    split_info |= {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed,
                   "predefined": bool(info.get("predefined_split"))}
    return {
        "images": sum(counts.values()),
        "classes": len(counts),
        "counts": counts,
        "imbalance_ratio": round(ratio, 2),
        "imbalanced": ratio >= IMBALANCE_WARNING,
        "remedy": (
            "Class weights are applied automatically during training, so each class counts equally; "
            "adding images to the smallest classes helps most."
        ),
        "too_small_to_train": sorted(c for c, n in counts.items() if n < MIN_IMAGES_TO_TRAIN),
        "below_advised": sorted(c for c, n in counts.items() if MIN_IMAGES_TO_TRAIN <= n < ADVISED_IMAGES),
        "sizes": {
            "width": _summary(widths),
            "height": _summary(heights),
            "small": sum(1 for w, h in zip(widths, heights) if min(w, h) < SMALL_SIDE),
        },
        "skipped": len(info.get("skipped", [])),
        "ignored_system_files": info.get("ignored_system_files", 0),
        "duplicates": {"within": len(duplicates["within"]), "across": len(duplicates["across"])},
        "unlabeled": len(info.get("unlabeled", [])),
        "split": split_info,
    }


def _summary(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


# ---------------------------------------------------------------- listing


def dataset_path(dataset_id: str, ws: Path) -> Path:
    """The folder of an existing dataset; DatasetError for an unknown or malformed id."""
    path = ws / "datasets" / dataset_id
    if not _DATASET_ID.match(dataset_id) or not (path / "dataset.json").is_file():
        raise DatasetError(
            f"There is no dataset '{dataset_id}' in {ws}; import one or run 'python -m core dataset sample shapes'."
        )
    return path


def load_dataset(dataset_id: str, ws: Path) -> dict[str, Any]:
    """The dataset.json of an existing dataset."""
    return read_json(dataset_path(dataset_id, ws) / "dataset.json")


def list_datasets(ws: Path) -> list[dict[str, Any]]:
    """Every dataset in the workspace, newest first."""
    root = ws / "datasets"
    if not root.is_dir():
        return []
    out = []
    for path in root.iterdir():
        if _DATASET_ID.match(path.name) and (path / "dataset.json").is_file():
            try:
                out.append(read_json(path / "dataset.json"))
            except ValueError:
                continue
    return sorted(out, key=lambda d: d.get("created", 0), reverse=True)


def delete_dataset(dataset_id: str, ws: Path) -> None:
    """Remove a dataset folder."""
    shutil.rmtree(dataset_path(dataset_id, ws))


def runs_using(dataset_id: str, ws: Path) -> list[str]:
    """Ids of the training runs whose config names this dataset (their test images go with it)."""
    found = []
    for config in sorted((ws / "runs").glob("*/config.json")):
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("dataset_id") == dataset_id:
                found.append(config.parent.name)
        except (OSError, ValueError):
            continue
    return found


# ---------------------------------------------------------------- split


def split(info: dict[str, Any], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
    """A stratified train/val/test split of (relative path, class index), the same for the same seed.

    A dataset imported with train/val/test folders keeps that split; a part it lacks is drawn from
    its training images with the given fraction.
    """
    if info.get("predefined_split"):
        return _predefined_split(info, val_fraction, test_fraction, seed)
    parts: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    too_few = [c for c in info["classes"] if len(info["images"][c]) < 3]
    if too_few:
        raise DatasetError(
            f"Class '{too_few[0]}' has fewer than 3 images, too few to split into training, validation and test images."
        )
    for index, label in enumerate(info["classes"]):
        files = sorted(info["images"][label])
        order = np.random.default_rng([seed, index]).permutation(len(files))
        n = len(files)
        n_test = max(1, round(n * test_fraction))
        n_val = max(1, round(n * val_fraction))
        chosen = [files[i] for i in order]
        parts["test"] += [(f, index) for f in chosen[:n_test]]
        parts["val"] += [(f, index) for f in chosen[n_test : n_test + n_val]]
        parts["train"] += [(f, index) for f in chosen[n_test + n_val :]]
    return parts


def _predefined_split(info: dict[str, Any], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
    index_of = {rel: i for i, label in enumerate(info["classes"]) for rel in info["images"][label]}
    given = info["predefined_split"]
    parts = {p: sorted((rel, index_of[rel]) for rel in given.get(p, []) if rel in index_of) for p in PARTS}
    for offset, (part, fraction) in enumerate((("test", test_fraction), ("val", val_fraction))):
        if parts[part]:
            continue
        kept: list[tuple[str, int]] = []
        for index in range(len(info["classes"])):
            files = [item for item in parts["train"] if item[1] == index]
            order = np.random.default_rng([seed, index, 1 + offset]).permutation(len(files))
            # Leave a class its only images rather than emptying its training part.
            n = max(1, round(len(files) * fraction)) if len(files) >= 3 else 0
            chosen = [files[i] for i in order]
            parts[part] += chosen[:n]
            kept += chosen[n:]
        parts["train"] = sorted(kept)
    return parts


def check_trainable(info: dict[str, Any]) -> None:
    """Refuse, in one sentence, a dataset too small to train on."""
    small = {c: n for c, n in info["counts"].items() if n < MIN_IMAGES_TO_TRAIN}
    if small:
        label, n = next(iter(small.items()))
        raise DatasetError(
            f"Class '{label}' has only {n} images; add at least {MIN_IMAGES_TO_TRAIN} images to every class before training."
        )


# ---------------------------------------------------------------- tf.data


def pipeline(root: Path, items: list[tuple[str, int]], image_size: int, batch_size: int, shuffle: bool, seed: int) -> Any:
    """A tf.data.Dataset of (float32 0-255 images, int labels), streamed from disk."""
    import tensorflow as tf

    paths = [str(root / rel) for rel, _ in items]
    labels = [label for _, label in items]
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, dtype=tf.int32)))
    if shuffle:
        ds = ds.shuffle(len(items), seed=seed, reshuffle_each_iteration=True)

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        img = tf.image.resize(tf.cast(img, tf.float32), (image_size, image_size))
        return img, label

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def augmentation_preview(
    paths: Sequence[Path], augment: AugmentConfig, seed: int, image_size: int = 160, variants: int = 4
) -> list[list[np.ndarray]]:
    """For each image: [as training sees it, then `variants` random augmentations] as uint8 arrays.

    The same Keras preprocessing layers as training (core.modeling.augmentation); imports TensorFlow.
    """
    import tensorflow as tf

    from core import modeling

    layer = modeling.augmentation(augment, seed)
    out = []
    for path in paths:
        img = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3)
        img = tf.image.resize(tf.cast(img, tf.float32), (image_size, image_size))
        batch = tf.repeat(img[None], variants, axis=0)
        changed = layer(batch, training=True) if layer is not None else batch
        arrays = [img.numpy(), *tf.unstack(changed)]
        out.append([np.clip(np.asarray(a), 0, 255).astype(np.uint8) for a in arrays])
    return out


# ---------------------------------------------------------------- built-in samples

SAMPLES = ("shapes", "flowers")
SHAPE_CLASSES = ("circle", "square", "triangle", "star")
SHAPES_PER_CLASS = 150
# TensorFlow's own copy of the flower photos (3,670 photos in 5 classes, CC-BY; credits in its LICENSE.txt).
FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
FLOWERS_BYTES = 228_813_984  # its size, for the progress bar if the server does not say
FLOWERS_OFFLINE = (
    "The flowers sample could not be downloaded from TensorFlow's server (this computer seems to be offline); "
    "upload your own images or load the shapes sample instead."
)
SAMPLE_DESCRIPTIONS = {
    "shapes": f"{SHAPES_PER_CLASS * len(SHAPE_CLASSES)} generated pictures of circles, squares, triangles and stars "
              "(made on this computer in seconds).",
    "flowers": "3,670 photos of daisies, dandelions, roses, sunflowers and tulips from TensorFlow's examples "
               "(a 220 MB download; needs internet).",
}


def _shape_points(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        corners, radii = 4, [r]
    elif kind == "triangle":
        corners, radii = 3, [r]
    else:  # star: alternate outer and inner radius
        corners, radii = 10, [r, r * 0.45]
    pts = []
    for i in range(corners):
        a = angle + 2 * np.pi * i / corners
        rad = radii[i % len(radii)]
        pts.append((cx + rad * np.cos(a), cy + rad * np.sin(a)))
    return pts


def _draw_shape(kind: str, rng: np.random.Generator, size: int) -> Image.Image:
    """One image: a filled shape of random colour, size, position and angle on a random gradient, with noise."""
    # Background: a linear gradient between two random colours, at a random angle.
    bg, bg2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = np.clip(0.5 + (xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta), 0, 1)[..., None]
    img = Image.fromarray(((1 - t) * bg + t * bg2).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    # A shape colour far enough from the background to be visible.
    mean_bg = (bg + bg2) / 2
    while True:
        fg = rng.integers(0, 256, 3)
        if np.abs(fg - mean_bg).sum() > 200:
            break
    fill = tuple(int(v) for v in fg)
    r = rng.uniform(0.18, 0.34) * size
    cx, cy = rng.uniform(r + 2, size - r - 2, 2)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(_shape_points(kind, cx, cy, r, rng.uniform(0, 2 * np.pi)), fill=fill)
    arr = np.asarray(img, dtype=np.float32)
    arr += rng.normal(0, rng.uniform(3, 15), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def generate_shapes(dest: Path, per_class: int = SHAPES_PER_CLASS, size: int = 128, seed: int = 0) -> Path:
    """Write the `shapes` sample (class folders of PNGs) into dest; the same seed gives the same images."""
    for index, kind in enumerate(SHAPE_CLASSES):
        folder = dest / kind
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, index])
        for i in range(per_class):
            _draw_shape(kind, rng, size).save(folder / f"{kind}_{i:03d}.png")
    return dest


def _download(url: str, dest: Path, progress: ProgressFn | None, limits: ImportLimits) -> None:
    """Stream a URL to a file, reporting progress; DatasetError with the offline sentence on any network failure."""
    if os.environ.get("TL_OFFLINE") == "1":
        raise DatasetError(FLOWERS_OFFLINE)
    try:
        with urllib.request.urlopen(url, timeout=30) as response, dest.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or FLOWERS_BYTES
            done = 0
            while chunk := response.read(2**20):
                done += len(chunk)
                if done > limits.max_total_bytes:
                    raise _Refused(f"The download is larger than {_mb(limits.max_total_bytes)}; it was stopped.")
                out.write(chunk)
                if progress:
                    progress(min(done / total, 1.0), f"Downloading the flower photos: {_mb(done)} of {_mb(total)}")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        raise DatasetError(FLOWERS_OFFLINE) from None


def import_sample(name: str, ws: Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Create a built-in sample dataset: `shapes` is generated here, `flowers` downloaded from TensorFlow."""
    if name not in SAMPLES:
        raise DatasetError(f"There is no built-in sample '{name}'; available samples: {', '.join(SAMPLES)}.")
    if name == "flowers":
        root = ws / "datasets"
        root.mkdir(parents=True, exist_ok=True)
        # Inside the workspace, removed afterwards: hosted servers often have a small /tmp.
        with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp:
            archive = Path(tmp) / "flower_photos.tgz"
            _download(FLOWERS_URL, archive, progress, ImportLimits())
            return import_path(archive, ws, name=name, source=name, progress=progress)
    with tempfile.TemporaryDirectory() as tmp:
        src = generate_shapes(Path(tmp) / name)
        info = import_path(src, ws, name=name, progress=progress)
    return info


def iter_thumbnails(info: dict[str, Any], ws: Path, per_class: int = 6) -> Iterator[tuple[str, Path]]:
    """(class, image path) for the first few images of each class, for a gallery."""
    root = dataset_path(info["id"], ws)
    for label in info["classes"]:
        for rel in info["images"][label][:per_class]:
            yield label, root / rel


