import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import datasets
from core.errors import DatasetError


def _png(colour=(200, 30, 30), size=(24, 20), mode="RGB") -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, colour)
    if mode == "P":
        img = img.convert("P")
    elif mode != "RGB":
        img = img.convert(mode)
    img.save(buf, "PNG" if mode != "CMYK" else "JPEG")
    return buf.getvalue()


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_folder_import_normalizes_and_lists_every_skipped_file(ws, tmp_path):
    src = _write(tmp_path / "src", {
        "cats/a.png": _png(),
        "cats/b.png": _png(mode="RGBA"),
        "cats/c.jpg": _png(mode="CMYK"),
        "dogs/d.png": _png(mode="P"),
        "dogs/e.png": _png(mode="L"),
        "dogs/broken.jpg": b"not an image at all",
        "dogs/notes.txt": b"hello",
        "loose.png": _png(),
    })
    info = datasets.import_path(src, ws)
    assert info["classes"] == ["cats", "dogs"]
    assert info["counts"] == {"cats": 3, "dogs": 2}
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons["dogs/broken.jpg"].startswith("not a readable image")
    assert "not an image file type" in reasons["dogs/notes.txt"]
    assert reasons["loose.png"] == "not inside a class folder"
    root = datasets.dataset_path(info["id"], ws)
    for label in info["classes"]:
        for rel in info["images"][label]:
            with Image.open(root / rel) as img:
                assert img.format == "JPEG" and img.mode == "RGB"
    assert json.loads((root / "dataset.json").read_text())["id"] == info["id"]
    assert datasets.list_datasets(ws)[0]["id"] == info["id"]


def test_alpha_goes_over_white_and_sixteen_bit_is_scaled():
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(buf, "PNG")
    img, _ = datasets.normalize_image(buf.getvalue())
    assert img.getpixel((0, 0)) == (255, 255, 255)
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), 30000, dtype=np.uint16)).save(buf, "PNG")
    img, _ = datasets.normalize_image(buf.getvalue())
    assert img.mode == "RGB" and img.getpixel((0, 0))[0] == 255


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    upright, original = datasets.normalize_image(buf.getvalue())
    assert original == (40, 20) and upright.size == (20, 40)


def test_decompression_bomb_is_an_error():
    buf = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buf, "PNG")
    with pytest.raises(DatasetError, match="decompression bomb"):
        datasets.normalize_image(buf.getvalue(), datasets.ImportLimits(max_pixels=1_000_000))


def test_zip_with_wrapping_folder_imports(ws, tmp_path):
    files = {f"my photos/{c}/{i}.png": _png((i * 40, 0, 0)) for c in ("a", "b") for i in range(3)}
    files["my photos/a/inner.zip"] = b"PK"
    info = datasets.import_path(_zip(tmp_path / "set.zip", files), ws)
    assert info["counts"] == {"a": 3, "b": 3}
    assert any("archive inside the archive" in s["reason"] for s in info["skipped"])


@pytest.mark.parametrize("evil", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_zip_path_traversal_is_refused_and_leaves_nothing(ws, tmp_path, evil):
    files = {f"{c}/{i}.png": _png() for c in ("a", "b") for i in range(3)}
    files[evil] = _png()
    with pytest.raises(DatasetError, match="points outside the archive"):
        datasets.import_path(_zip(tmp_path / "evil.zip", files), ws)
    assert not (tmp_path / "evil.png").exists()
    assert list((ws / "datasets").glob("*")) == [] if (ws / "datasets").exists() else True


def test_zip_symlink_member_is_skipped(ws, tmp_path):
    path = _zip(tmp_path / "links.zip", {f"{c}/{i}.png": _png() for c in ("a", "b") for i in range(2)})
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("a/link.png")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    result = datasets.import_path(path, ws)
    assert {"file": "a/link.png", "reason": "symbolic link (not followed)"} in result["skipped"]


def test_zip_bomb_ratio_and_caps_are_refused(ws, tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {"a/x.png": b"\0" * 5_000_000, "b/y.png": _png()})
    with pytest.raises(DatasetError, match="possible zip bomb"):
        datasets.import_path(bomb, ws)
    many = _zip(tmp_path / "many.zip", {f"a/{i}.png": _png() for i in range(6)})
    with pytest.raises(DatasetError, match="more than the limit of 5"):
        datasets.import_path(many, ws, limits=datasets.ImportLimits(max_members=5))
    with pytest.raises(DatasetError, match="not a readable zip"):
        datasets.import_path(_write(tmp_path, {"fake.zip": b"nope"}) / "fake.zip", ws)


def test_failed_import_leaves_no_folder(ws, tmp_path):
    src = _write(tmp_path / "src", {"a/1.png": _png(), "a/2.png": _png(), "b/1.png": _png(), "b/bad.png": b"x"})
    with pytest.raises(DatasetError, match="class 'b' has 1 readable image"):
        datasets.import_path(src, ws)
    assert [p for p in (ws / "datasets").iterdir()] == []


def test_single_class_and_empty_sources_are_refused(ws, tmp_path):
    one = _write(tmp_path / "one", {"a/1.png": _png(), "a/2.png": _png()})
    with pytest.raises(DatasetError, match="Only one class"):
        datasets.import_path(one, ws)
    flat = _write(tmp_path / "flat", {"1.png": _png(), "2.png": _png()})
    with pytest.raises(DatasetError, match="No images inside class folders"):
        datasets.import_path(flat, ws)
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.import_path(tmp_path / "missing", ws)


def test_split_is_stratified_disjoint_and_deterministic():
    info = {"classes": ["a", "b", "c"], "images": {c: [f"{c}/{i}.jpg" for i in range(n)] for c, n in (("a", 40), ("b", 20), ("c", 100))}}
    parts = datasets.split(info, 0.15, 0.15, seed=3)
    everything = parts["train"] + parts["val"] + parts["test"]
    assert sorted(everything) == sorted((f, i) for i, c in enumerate(info["classes"]) for f in info["images"][c])
    for index, n in enumerate((40, 20, 100)):
        for name in ("val", "test"):
            count = sum(1 for _, label in parts[name] if label == index)
            assert count == max(1, round(n * 0.15))
    assert datasets.split(info, 0.15, 0.15, seed=3) == parts
    assert datasets.split(info, 0.15, 0.15, seed=4) != parts


def test_pipeline_streams_resized_batches(tiny, ws):
    parts = datasets.split(tiny, 0.2, 0.2, seed=0)
    ds = datasets.pipeline(datasets.dataset_path(tiny["id"], ws), parts["train"], 32, 5, True, 0)
    images, labels = next(iter(ds))
    assert images.shape == (5, 32, 32, 3) and images.dtype.name == "float32"
    assert float(images.numpy().max()) > 1.0  # raw 0-255 pixels; preprocessing is inside the model
    assert set(labels.numpy().tolist()) <= {0, 1, 2}
    assert sum(int(b[1].shape[0]) for b in ds) == len(parts["train"])


def test_shapes_sample_is_deterministic_and_big_enough(ws, tmp_path):
    a = datasets.generate_shapes(tmp_path / "a", per_class=3, seed=5)
    b = datasets.generate_shapes(tmp_path / "b", per_class=3, seed=5)
    for f in a.rglob("*.png"):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes()
    info = datasets.import_sample("shapes", ws)
    assert len(info["classes"]) >= 4
    assert min(info["counts"].values()) >= 80
    assert not info["skipped"]
    with pytest.raises(DatasetError, match="available samples: shapes"):
        datasets.import_sample("cats", ws)


def test_check_trainable_names_the_small_class():
    with pytest.raises(DatasetError, match="Class 'b' has only 4 images"):
        datasets.check_trainable({"counts": {"a": 50, "b": 4}})
