"""Datasets: import (folder, zip, built-in sample), normalization, stratified split, tf.data pipelines.

An imported dataset is a folder `datasets/<id>/` of re-encoded RGB JPEGs under generated names,
one sub-folder per class, plus `dataset.json`. Original bytes are decoded once, never kept.
TensorFlow is imported only by the pipeline functions, so the Data page stays light.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from core.errors import DatasetError
from core.runs import read_json, write_json

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
MAX_STORED_SIDE = 1024  # larger photos are scaled down on import; no backbone needs more
MIN_IMAGES_TO_IMPORT = 2
MIN_IMAGES_TO_TRAIN = 10
ADVISED_IMAGES = 100
_DATASET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}-[0-9a-f]{8}$")


@dataclass(frozen=True)
class ImportLimits:
    """Caps that make a hostile archive fail with a sentence instead of filling the disk."""

    max_members: int = 20_000
    max_file_bytes: int = 50 * 2**20
    max_total_bytes: int = 2 * 2**30
    max_ratio: float = 100.0  # uncompressed / compressed, per member
    max_pixels: int = 50_000_000  # Pillow's decompression-bomb guard, made an error


@dataclass(frozen=True)
class _Entry:
    """One candidate image: its class, the name to report, and how to read its bytes."""

    label: str
    name: str
    read: Callable[[], bytes]


# ---------------------------------------------------------------- normalization


def normalize_image(data: bytes, limits: ImportLimits = ImportLimits()) -> tuple[Image.Image, tuple[int, int]]:
    """Decode bytes into an upright RGB image (EXIF applied, alpha over white); returns it and its original size."""
    bomb = DatasetError(f"the image is larger than {limits.max_pixels:,} pixels (a possible decompression bomb)")
    with warnings.catch_warnings():
        # Pillow's own guard becomes an error; our (lower) cap is checked from the header,
        # before any pixel is decoded, without touching Pillow's process-wide limit.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            if img.size[0] * img.size[1] > limits.max_pixels:
                raise bomb
            img.load()
        except DatasetError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise bomb from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
            raise DatasetError(f"not a readable image ({type(exc).__name__})") from None
    size = img.size
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        img = white
    elif img.mode == "I;16" or img.mode == "I":
        # 16-bit grayscale: scale to 8 bits instead of clipping everything to white.
        arr = np.asarray(img, dtype=np.float64)
        peak = arr.max() or 1.0
        img = Image.fromarray((arr * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    else:
        img = img.convert("RGB")
    if max(img.size) > MAX_STORED_SIDE:
        img.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE), Image.Resampling.LANCZOS)
    return img, size


def load_image_array(data: bytes, image_size: int) -> np.ndarray:
    """An image file's bytes as a float32 (size, size, 3) array of 0-255 pixels, as training sees them."""
    import tensorflow as tf

    img, _ = normalize_image(data)
    arr = tf.image.resize(np.asarray(img, dtype=np.float32), (image_size, image_size))
    return arr.numpy()


# ---------------------------------------------------------------- import


def _safe_dir_name(label: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "class"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "dataset"


def _check_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[a-zA-Z]:", name) or ".." in path.parts:
        raise DatasetError(f"The archive entry '{name}' points outside the archive; the zip was refused as unsafe.")
    return path


def _zip_entries(src: Path, limits: ImportLimits, skipped: list[dict]) -> list[tuple[PurePosixPath, Callable[[], bytes]]]:
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError):
        raise DatasetError(f"'{src.name}' is not a readable zip file; re-create it and upload again.") from None
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise DatasetError(
            f"'{src.name}' holds {len(infos):,} entries, more than the limit of {limits.max_members:,}; split it into smaller zips."
        )
    total = 0
    out = []
    for info in infos:
        path = _check_member_path(info.filename)
        if info.is_dir():
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            skipped.append({"file": info.filename, "reason": "symbolic link (not followed)"})
            continue
        if path.name.startswith(".") or "__MACOSX" in path.parts:
            continue
        if path.suffix.lower() in ARCHIVE_SUFFIXES:
            skipped.append({"file": info.filename, "reason": "archive inside the archive (not opened); upload it on its own"})
            continue
        if info.file_size > limits.max_file_bytes:
            skipped.append({"file": info.filename, "reason": f"larger than {limits.max_file_bytes // 2**20} MB"})
            continue
        if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
            raise DatasetError(
                f"The archive entry '{info.filename}' expands {info.file_size / info.compress_size:.0f} times, "
                f"more than the limit of {limits.max_ratio:.0f}; the zip was refused as a possible zip bomb."
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise DatasetError(
                f"'{src.name}' expands to more than {limits.max_total_bytes // 2**30} GB; upload a smaller set."
            )

        def read(info: zipfile.ZipInfo = info) -> bytes:
            # Bounded read: never trust the declared size alone.
            with zf.open(info) as f:
                data = f.read(limits.max_file_bytes + 1)
            if len(data) > limits.max_file_bytes:
                raise DatasetError(f"larger than {limits.max_file_bytes // 2**20} MB")
            return data

        out.append((path, read))
    return out


def _folder_entries(src: Path, limits: ImportLimits, skipped: list[dict]) -> list[tuple[PurePosixPath, Callable[[], bytes]]]:
    out = []
    for path in sorted(src.rglob("*")):
        rel = PurePosixPath(path.relative_to(src).as_posix())
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink():
            skipped.append({"file": str(rel), "reason": "symbolic link (not followed)"})
            continue
        if not path.is_file():
            continue
        if path.stat().st_size > limits.max_file_bytes:
            skipped.append({"file": str(rel), "reason": f"larger than {limits.max_file_bytes // 2**20} MB"})
            continue
        out.append((rel, path.read_bytes))
    if len(out) > limits.max_members:
        raise DatasetError(f"'{src}' holds more than {limits.max_members:,} files; import a smaller folder.")
    return out


def _classify(files: list[tuple[PurePosixPath, Callable[[], bytes]]], skipped: list[dict]) -> list[_Entry]:
    """Turn relative paths into (class, file) entries; a single wrapping top folder is unwrapped."""
    files = [(p, r) for p, r in files if len(p.parts) >= 1]
    while files and all(len(p.parts) >= 3 for p, _ in files) and len({p.parts[0] for p, _ in files}) == 1:
        files = [(PurePosixPath(*p.parts[1:]), r) for p, r in files]
    entries = []
    for path, read in files:
        if len(path.parts) < 2:
            skipped.append({"file": str(path), "reason": "not inside a class folder"})
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append({"file": str(path), "reason": f"not an image file type ({path.suffix or 'no extension'})"})
            continue
        entries.append(_Entry(label=path.parts[0], name=str(path), read=read))
    return entries


def _write_dataset(entries: list[_Entry], skipped: list[dict], name: str, source: str, ws: Path, limits: ImportLimits) -> dict[str, Any]:
    """Decode, normalize and write every image into a temporary folder, then rename it into place."""
    labels = sorted({e.label for e in entries})
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
    dataset_id = f"{_slug(name)}-{secrets.token_hex(4)}"
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    try:
        taken: set[str] = set()
        dirs = {label: _safe_dir_name(label, taken) for label in labels}
        images: dict[str, list[str]] = {label: [] for label in labels}
        sizes: list[list[int]] = []
        hashes: dict[str, str] = {}
        for label in labels:
            (tmp / dirs[label]).mkdir()
        for entry in entries:
            try:
                data = entry.read()
                img, size = normalize_image(data, limits)
            except DatasetError as exc:
                skipped.append({"file": entry.name, "reason": str(exc)})
                continue
            rel = f"{dirs[entry.label]}/{len(images[entry.label]):05d}.jpg"
            img.save(tmp / rel, "JPEG", quality=92)
            images[entry.label].append(rel)
            sizes.append(list(size))
            hashes[rel] = hashlib.sha256(data).hexdigest()
        counts = {label: len(files) for label, files in images.items()}
        too_few = [label for label, n in counts.items() if n < MIN_IMAGES_TO_IMPORT]
        if too_few:
            raise DatasetError(
                f"The class '{too_few[0]}' has {counts[too_few[0]]} readable image(s); every class needs at least "
                f"{MIN_IMAGES_TO_IMPORT} (and 100 or more is best)."
            )
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
            "skipped": skipped,
            "warnings": health_warnings(counts),
        }
        write_json(tmp / "dataset.json", info)
        os.replace(tmp, root / dataset_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def health_warnings(counts: dict[str, int]) -> list[str]:
    """Plain sentences about class sizes and balance."""
    out = []
    for label, n in sorted(counts.items()):
        if n < MIN_IMAGES_TO_TRAIN:
            out.append(f"Class '{label}' has only {n} images; add at least {MIN_IMAGES_TO_TRAIN} before training.")
        elif n < ADVISED_IMAGES:
            out.append(f"Class '{label}' has {n} images; 100 or more per class usually gives a more reliable model.")
    if counts and min(counts.values()) and max(counts.values()) / min(counts.values()) >= 3:
        out.append(
            f"The classes are imbalanced ({max(counts.values())} vs {min(counts.values())} images); "
            "class weights will balance their influence during training."
        )
    return out


def import_path(
    src: str | os.PathLike, ws: Path, name: str | None = None, limits: ImportLimits = ImportLimits(), source: str | None = None
) -> dict[str, Any]:
    """Import a folder of class folders, or a .zip of one, as a new dataset; returns its dataset.json.

    `source` is what the user knows it by (an upload's file name), when src is a temporary copy.
    """
    src = Path(src)
    skipped: list[dict] = []
    if src.is_dir():
        files = _folder_entries(src, limits, skipped)
    elif src.is_file() and src.suffix.lower() == ".zip":
        files = _zip_entries(src, limits, skipped)
    elif src.exists():
        raise DatasetError(f"'{src.name}' is neither a folder nor a .zip file; give a folder of class folders or a zip of one.")
    else:
        raise DatasetError(f"'{src}' does not exist; check the path.")
    entries = _classify(files, skipped)
    source = source or src.name
    return _write_dataset(entries, skipped, name or Path(source).stem, source, ws, limits)


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


# ---------------------------------------------------------------- split


def split(info: dict[str, Any], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
    """A stratified train/val/test split of (relative path, class index), the same for the same seed."""
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


# ---------------------------------------------------------------- built-in sample

SAMPLES = ("shapes",)
SHAPE_CLASSES = ("circle", "square", "triangle", "star")
SHAPES_PER_CLASS = 150


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


def import_sample(name: str, ws: Path) -> dict[str, Any]:
    """Generate a built-in sample and import it like any folder."""
    if name not in SAMPLES:
        raise DatasetError(f"There is no built-in sample '{name}'; available samples: {', '.join(SAMPLES)}.")
    with tempfile.TemporaryDirectory() as tmp:
        src = generate_shapes(Path(tmp) / name)
        info = import_path(src, ws, name=name)
    return info


def iter_thumbnails(info: dict[str, Any], ws: Path, per_class: int = 6) -> Iterator[tuple[str, Path]]:
    """(class, image path) for the first few images of each class, for a gallery."""
    root = dataset_path(info["id"], ws)
    for label in info["classes"]:
        for rel in info["images"][label][:per_class]:
            yield label, root / rel
