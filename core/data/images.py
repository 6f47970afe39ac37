"""Decoding an image file once, safely: the pixel cap checked from the header before any pixel is
decoded, EXIF orientation applied, alpha put over white, 16-bit scaled, RGB, at most 1024 px a side."""

from __future__ import annotations

import io
import math
import statistics
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps

from core.data.limits import ImportLimits
from core.errors import DatasetError

MAX_STORED_SIDE = 1024  # larger photos are scaled down on import; no backbone needs more


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


def load_image_array(data: bytes, image_size: int, limits: ImportLimits | None = None) -> np.ndarray:
    """An image file's bytes as a float32 (size, size, 3) array of 0-255 pixels, as training sees them.

    The pixel cap is the import's (TL_IMPORT_MAX_PIXELS) unless `limits` says otherwise.
    """
    import tensorflow as tf

    img, _ = normalize_image(data, limits or ImportLimits.from_env())
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


# ---------------------------------------------------------------- the image kind's entry (core.data.kinds)

SMALL_SIDE = 64  # images whose shorter side is below this carry little detail
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def sniff(name: str, head: bytes) -> bool:
    """True when the file's first bytes are those of an image format the importer reads."""
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def normalise(name: str, data: bytes, limits: ImportLimits) -> list[tuple[str, bytes, dict]]:
    """One image file as stored: a re-encoded RGB JPEG, with its original size as a fact."""
    img, size = normalize_image(data, limits)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return [(".jpg", buf.getvalue(), {"size": list(size)})]


def record(facts: list[dict]) -> dict:
    """What dataset.json keeps of the labelled images' facts: their original sizes."""
    return {"image_sizes": [f["size"] for f in facts]}


def _summary(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def health_facts(info: dict) -> dict:
    """The health report's facts of images: widths, heights, and how many are small."""
    sizes = info.get("image_sizes", [])
    widths, heights = [s[0] for s in sizes], [s[1] for s in sizes]
    return {"sizes": {
        "width": _summary(widths),
        "height": _summary(heights),
        "small": sum(1 for w, h in zip(widths, heights) if min(w, h) < SMALL_SIDE),
    }}


def loader(size: int) -> Callable[[Any], Any]:
    """Inside tf.data: a stored JPEG's path tensor -> float32 (size, size, 3) pixels, 0-255."""
    import tensorflow as tf

    def load(path: Any) -> Any:
        img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(tf.cast(img, tf.float32), (size, size))

    return load
