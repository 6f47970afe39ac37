"""A generated corpus of hostile and awkward archives, each with its exact expected outcome.

Every case starts from two good classes (cat, dog; 3 small PNGs each) and adds or changes members.
For each, the test asserts what was imported (classes and counts), exactly which files were
skipped and why (or the one sentence of a refusal), and that nothing was written anywhere but the
new dataset folder inside the workspace.
"""

from __future__ import annotations

import io
import re
import struct
import unicodedata
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from core.data import importer
from core.data.limits import ImportLimits
from core.errors import DatasetError
from core.store import datasets


def _png(colour=(200, 30, 30), size=(16, 12), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def _noise(size=(64, 48)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _sixteen_bit_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.linspace(0, 40000, 16 * 12, dtype=np.uint16).reshape(12, 16)).save(buf, "PNG")
    return buf.getvalue()


def _rgba_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (16, 12), (0, 0, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned by 90 degrees
    return _jpeg(Image.new("RGB", (40, 20), (10, 200, 10)), exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _huge_header_png(side: int = 40_000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (the pixels themselves are never there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BASE = {f"{c}/{c}_{i}.png": _png((60 * i, 120 if c == "cat" else 0, 90)) for c in ("cat", "dog") for i in range(3)}
GOOD_COUNTS = {"cat": 3, "dog": 3}


def _write_zip(path: Path, members: dict[str, bytes], extra: Callable[[zipfile.ZipFile], None] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if extra:
            extra(zf)
    return path


def _symlink(zf: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo("cat/link.png")
    info.external_attr = 0o120777 << 16
    zf.writestr(info, "/etc/passwd")


def _empty_folder(zf: zipfile.ZipFile) -> None:
    zf.writestr(zipfile.ZipInfo("bird/"), b"")


# Each case: members (added to BASE unless "replace"), an optional extra writer, limits, and the outcome:
# ("refused", sentence fragment) or ("imported", counts, exact skipped list, checks on the result).
CASES: dict[str, dict[str, Any]] = {
    "zip slip": {"add": {"../evil.png": _png()}, "refused": "'../evil.png' points outside the archive"},
    "zip slip inside a folder": {"add": {"cat/../../evil.png": _png()}, "refused": "points outside the archive"},
    "absolute path": {"add": {"/tmp/evil.png": _png()}, "refused": "'/tmp/evil.png' points outside the archive"},
    "symlink": {"extra": _symlink, "counts": GOOD_COUNTS,
                "skipped": [{"file": "cat/link.png", "reason": "symbolic link (not followed)"}]},
    "nested zip": {"add": {"cat/more.zip": b"PK\x05\x06" + b"\0" * 18},
                   "counts": GOOD_COUNTS,
                   "skipped": [{"file": "cat/more.zip",
                                "reason": "archive inside the archive (not opened); upload it on its own"}]},
    # One entry that expands too much is set aside unread; the rest of the archive imports.
    "ratio bomb": {"add": {"cat/zeros.png": b"\0" * 5_000_000}, "counts": GOOD_COUNTS,
                   "skipped": [{"file": "cat/zeros.png", "reason": re.compile(
                       r"expands [\d,]+ times, more than the limit of 100 \(a possible zip bomb\); set aside unread")}]},
    "too many members": {"limits": ImportLimits(max_members=5),
                         "refused": "holds 6 entries, more than the limit of 5"},
    "over the total size": {"limits": ImportLimits(max_total_bytes=300),
                            "refused": "expands to more than"},
    "truncated JPEG": {"add": {"dog/cut.jpg": _jpeg(_noise())[:400]}, "counts": GOOD_COUNTS,
                       "skipped": [{"file": "dog/cut.jpg", "reason": "not a readable image (the file is cut short or damaged)"}]},
    "non-image files": {"add": {"cat/notes.txt": b"hello", "dog/fake.jpg": b"hello"}, "counts": GOOD_COUNTS,
                        "skipped": [{"file": "cat/notes.txt", "reason": "not an image file type (.txt)"},
                                    {"file": "dog/fake.jpg", "reason": "not a readable image (not a picture format that can be read)"}]},
    "CMYK JPEG": {"add": {"cat/cmyk.jpg": _jpeg(Image.new("CMYK", (16, 12), (0, 255, 255, 0)))},
                  "counts": {"cat": 4, "dog": 3}, "skipped": []},
    "16-bit PNG": {"add": {"cat/deep.png": _sixteen_bit_png()}, "counts": {"cat": 4, "dog": 3}, "skipped": []},
    "RGBA PNG": {"add": {"cat/clear.png": _rgba_png()}, "counts": {"cat": 4, "dog": 3}, "skipped": []},
    "EXIF-rotated JPEG": {"add": {"cat/turned.jpg": _exif_rotated_jpeg()}, "counts": {"cat": 4, "dog": 3}, "skipped": []},
    "animated GIF": {"add": {"dog/moving.gif": _animated_gif()}, "counts": {"cat": 3, "dog": 4}, "skipped": []},
    "PNG header claiming 40,000 x 40,000 pixels": {
        "add": {"dog/huge.png": _huge_header_png()}, "counts": GOOD_COUNTS,
        "skipped": [{"file": "dog/huge.png",
                     "reason": "the image is larger than 50,000,000 pixels (a possible decompression bomb)"}]},
    "empty class folder": {"extra": _empty_folder, "counts": GOOD_COUNTS,
                           "skipped": [{"file": "bird/", "reason": "empty folder (no images), so no class was made from it"}]},
    "single class": {"replace": {k: v for k, v in BASE.items() if k.startswith("cat/")},
                     "refused": "Only one class ('cat') was found"},
    "no class folders": {"replace": {"a.png": _png(), "b.png": _png()}, "refused": "No images inside class folders"},
    "class with one image": {"replace": {**BASE, "bird/only.png": _png()},
                             "refused": "The class 'bird' has 1 readable image(s)"},
    "unicode class names": {
        "replace": {f"{unicodedata.normalize('NFD', 'café')}/{i}.png": _png((i, 0, 0)) for i in range(2)}
        | {f"café/{i + 2}.png": _png((i, 9, 0)) for i in range(1)}
        | {f"猫/{i}.png": _png((0, i, 0)) for i in range(2)},
        "counts": {"café": 3, "猫": 2}, "skipped": []},
    "__MACOSX and .DS_Store junk": {
        "add": {"__MACOSX/cat/._cat_0.png": b"\0\5\26\7", "cat/.DS_Store": b"junk", ".DS_Store": b"junk",
                "dog/Thumbs.db": b"junk"},
        "counts": GOOD_COUNTS, "skipped": [], "junk": 4},
    "wrapping folder with a licence": {
        "replace": {f"My Photos/{k}": v for k, v in BASE.items()} | {"My Photos/LICENSE.txt": b"CC-BY 2.0: photo credits"},
        "counts": GOOD_COUNTS, "skipped": [], "documents": ["docs/LICENSE.txt"]},
    "readme beside the wrapping folder": {
        "replace": {f"My Photos/{k}": v for k, v in BASE.items()} | {"README.md": b"# Photos", "list.csv": b"a,b"},
        "counts": GOOD_COUNTS, "skipped": [{"file": "list.csv", "reason": "not inside a class folder"}],
        "documents": ["docs/README.txt"]},
}


def _tree(root: Path, skip: Path) -> set[Path]:
    return {p for p in root.rglob("*") if skip not in p.parents and p != skip}


@pytest.mark.parametrize("case", list(CASES))
def test_corpus_case(case, ws, tmp_path, monkeypatch):
    spec = CASES[case]
    members = spec.get("replace", {**BASE, **spec.get("add", {})})
    source = tmp_path / "upload" / "photos.zip"
    source.parent.mkdir()
    _write_zip(source, members, spec.get("extra"))
    # Relative member paths would resolve against the working directory: make it a watched folder.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _tree(tmp_path, ws)
    limits = spec.get("limits", ImportLimits())

    if "refused" in spec:
        with pytest.raises(DatasetError, match=spec["refused"].replace("(", r"\(").replace(")", r"\)")):
            importer.import_path(source, ws, limits=limits)
        assert list((ws / "datasets").iterdir()) == [] if (ws / "datasets").exists() else True
    else:
        info = importer.import_path(source, ws, limits=limits)
        assert info["counts"] == spec["counts"]
        assert len(info["skipped"]) == len(spec["skipped"])
        for got, want in zip(info["skipped"], spec["skipped"]):
            reason = want["reason"]
            assert got["file"] == want["file"]
            assert reason.fullmatch(got["reason"]) if isinstance(reason, re.Pattern) else got["reason"] == reason
        assert info["ignored_system_files"] == spec.get("junk", 0)
        assert info["documents"] == spec.get("documents", [])
        root = datasets.dataset_path(info["id"], ws)
        assert [p.name for p in (ws / "datasets").iterdir()] == [info["id"]]  # no temporary folder left
        stored = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        expected = sorted([rel for files in info["images"].values() for rel in files] + info["documents"] + ["dataset.json"])
        assert stored == expected
        for rel in (r for files in info["images"].values() for r in files):
            assert rel.isascii() and rel.endswith(".jpg")
            with Image.open(root / rel) as img:
                assert img.format == "JPEG" and img.mode == "RGB"
    # Nothing was written outside the workspace: not beside the zip, not in the working directory.
    assert _tree(tmp_path, ws) == before
    assert not list(tmp_path.parent.glob("evil.png")) and not Path("/tmp/evil.png").exists()


def test_converted_images_look_right(ws, tmp_path):
    """The awkward formats arrive as upright RGB with sensible pixels, not just "imported"."""
    members = {**BASE, "cat/clear.png": _rgba_png(), "cat/turned.jpg": _exif_rotated_jpeg(),
               "cat/deep.png": _sixteen_bit_png(), "dog/moving.gif": _animated_gif()}
    info = importer.import_path(_write_zip(tmp_path / "odd.zip", members), ws)
    root = datasets.dataset_path(info["id"], ws)
    cat, dog = (info["images"][c] for c in ("cat", "dog"))
    # Files are stored in archive order: the three BASE images, then the odd ones.
    with Image.open(root / cat[3]) as clear:
        assert clear.getpixel((0, 0)) == (255, 255, 255)  # transparency over white
    with Image.open(root / cat[4]) as turned:
        assert turned.size == (20, 40)  # EXIF rotation applied
    with Image.open(root / cat[5]) as deep:
        assert max(deep.getpixel((15, 11))) >= 250  # 16-bit range scaled into 8 bits, not clipped
    with Image.open(root / dog[3]) as first_frame:
        red, green, blue = first_frame.getpixel((5, 5))
        assert red > 200 and blue < 60  # the first frame of the animation
    sizes = info["image_sizes"]
    assert [40, 20] in sizes  # the original size, as uploaded


def test_a_file_that_is_not_a_zip_is_refused(ws, tmp_path):
    fake = tmp_path / "photos.zip"
    fake.write_bytes(b"these are not the photos you are looking for")
    with pytest.raises(DatasetError, match="'photos.zip' is not a readable zip file"):
        importer.import_path(fake, ws)
    with pytest.raises(DatasetError, match="'upload.zip' is not a readable zip file"):
        importer.import_upload(io.BytesIO(b"PK but not really"), "upload.zip", ws)
    assert not (ws / "datasets").exists() or list((ws / "datasets").iterdir()) == []
