"""Built-in sample datasets: `shapes`, generated here in seconds; `shapes-field`, the same four shapes as
they would look elsewhere (a target domain for domain adaptation); and `flowers`, downloaded from
TensorFlow's own copy of the flower photos (offline it says so in one sentence)."""

from __future__ import annotations

import http.client
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core import settings
from core.data import importer, sounds, texts
from core.data.limits import ImportLimits, ProgressFn, Refused, size_words
from core.errors import DatasetError

SAMPLES = ("shapes", "shapes-field", "flowers", "sounds", "texts")
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
    "shapes-field": f"{SHAPES_PER_CLASS * len(SHAPE_CLASSES)} pictures of the same four shapes as they would look "
                    "elsewhere: outlines and muted colours on textured, photo-like backgrounds, blurred and unevenly lit "
                    "(a second domain for domain adaptation; made on this computer in seconds).",
    "texts": f"{texts.SAMPLE_PER_CLASS * len(texts.SAMPLE_CLASSES)} generated short feedback texts: praise, "
             "complaints and questions (made on this computer at once).",
    "flowers": "3,670 photos of daisies, dandelions, roses, sunflowers and tulips from TensorFlow's examples "
               "(a 220 MB download; needs internet).",
    "sounds": sounds.SOUNDS_NOTE + ".",
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
    return _write_shapes(dest, _draw_shape, per_class, size, [seed], "")


def _write_shapes(dest: Path, draw: Any, per_class: int, size: int, seed: list[int], tag: str) -> Path:
    """One folder per shape class of `per_class` drawings; each class draws from its own seeded generator."""
    for index, kind in enumerate(SHAPE_CLASSES):
        folder = dest / kind
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed[0], index, *seed[1:]])
        for i in range(per_class):
            draw(kind, rng, size).save(folder / f"{kind}{tag}_{i:03d}.png")
    return dest


# ---------------------------------------------------------------- shapes-field: the same shapes, elsewhere


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency colour noise (a coarse random grid, resized smoothly): photo-like blotches of colour."""
    grid = rng.integers(0, 256, (cells, cells, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), dtype=np.float32)


def _field_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background: smooth blotches, plus stripes, a checkerboard or grain, in earthy tones."""
    base = _smooth_noise(rng, size, int(rng.integers(3, 7)))
    earth = np.array([[110, 95, 70], [70, 90, 60], [95, 100, 110], [130, 115, 95]], dtype=np.float32)
    base = 0.45 * base + 0.55 * earth[rng.integers(len(earth))]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:  # stripes at a random angle and period
        a, period = rng.uniform(0, np.pi), rng.uniform(5, 14)
        texture = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period)
    elif kind == 1:  # a checkerboard
        cell = int(rng.integers(6, 16))
        texture = ((xx // cell + yy // cell) % 2) * 2 - 1.0
    else:  # coarse grain
        texture = np.asarray(Image.fromarray(rng.integers(0, 256, (size // 4, size // 4), dtype=np.uint8))
                             .resize((size, size), Image.NEAREST), dtype=np.float32) / 127.5 - 1
    return base + rng.uniform(10, 25) * texture[..., None]


def _draw_field_shape(kind: str, rng: np.random.Generator, size: int) -> Image.Image:
    """One shapes-field image: the shape as an outline or in a muted colour on a textured background,
    then uneven lighting, blur and sensor noise."""
    img = Image.fromarray(np.clip(_field_background(rng, size), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    # Muted colours, lighter or darker than the background: visible, but without the source's bright fills.
    tone = rng.choice([rng.uniform(215, 250), rng.uniform(5, 35)])
    colour = tuple(int(np.clip(tone + v, 0, 255)) for v in rng.normal(0, 18, 3))
    r = rng.uniform(0.18, 0.34) * size
    cx, cy = rng.uniform(r + 2, size - r - 2, 2)
    outline = rng.random() < 0.6
    width = int(rng.integers(3, 6))
    if kind == "circle":
        box = [cx - r, cy - r, cx + r, cy + r]
        draw.ellipse(box, outline=colour, width=width) if outline else draw.ellipse(box, fill=colour)
    else:
        pts = _shape_points(kind, cx, cy, r, rng.uniform(0, 2 * np.pi))
        if outline:
            draw.line(pts + pts[:1], fill=colour, width=width, joint="curve")
        else:
            draw.polygon(pts, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    arr = np.asarray(img, dtype=np.float32)
    # Light from one side (a linear ramp) and a vignette, as a phone photo outdoors.
    yy, xx = np.mgrid[0:size, 0:size] / size
    theta = rng.uniform(0, 2 * np.pi)
    ramp = 1 + rng.uniform(0.2, 0.5) * ((xx - 0.5) * np.cos(theta) + (yy - 0.5) * np.sin(theta))
    vignette = 1 - 0.6 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    arr = arr * (ramp * vignette * rng.uniform(0.7, 1.2))[..., None]
    arr += rng.normal(0, rng.uniform(4, 12), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def generate_shapes_field(dest: Path, per_class: int = SHAPES_PER_CLASS, size: int = 128, seed: int = 0) -> Path:
    """Write the `shapes-field` sample (the same class folders as `shapes`, another look) into dest."""
    return _write_shapes(dest, _draw_field_shape, per_class, size, [seed, 7], "_field")  # 7: never `shapes`' draws


def _download(url: str, dest: Path, progress: ProgressFn | None, limits: ImportLimits) -> None:
    """Stream a URL to a file, reporting progress; DatasetError with the offline sentence on any network failure."""
    if settings.offline():
        raise DatasetError(FLOWERS_OFFLINE)
    try:
        with urllib.request.urlopen(url, timeout=30) as response, dest.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or FLOWERS_BYTES
            done = 0
            while chunk := response.read(2**20):
                done += len(chunk)
                if done > limits.max_total_bytes:
                    raise Refused(f"The download is larger than {size_words(limits.max_total_bytes)}; it was stopped.")
                out.write(chunk)
                if progress:
                    progress(min(done / total, 1.0), f"Downloading the flower photos: {size_words(done)} of {size_words(total)}")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        raise DatasetError(FLOWERS_OFFLINE) from None


def import_sample(name: str, ws: Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Create a built-in sample dataset: `shapes` and `shapes-field` are generated here, `flowers` downloaded."""
    if name not in SAMPLES:
        raise DatasetError(f"There is no built-in sample '{name}'; available samples: {', '.join(SAMPLES)}.")
    if name == "flowers":
        root = ws / "datasets"
        root.mkdir(parents=True, exist_ok=True)
        # Inside the workspace, removed afterwards: hosted servers often have a small /tmp.
        with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp:
            archive = Path(tmp) / "flower_photos.tgz"
            _download(FLOWERS_URL, archive, progress, ImportLimits())
            return importer.import_path(archive, ws, name=name, source=name, progress=progress)
    if name == "texts":
        with tempfile.TemporaryDirectory() as tmp:
            return importer.import_path(texts.write_sample(Path(tmp) / "texts.csv"), ws, name=name, progress=progress)
    with tempfile.TemporaryDirectory() as tmp:
        make = {"shapes-field": generate_shapes_field, "sounds": sounds.generate_sounds}.get(name, generate_shapes)
        src = make(Path(tmp) / name)
        info = importer.import_path(src, ws, name=name, progress=progress)
    return info
