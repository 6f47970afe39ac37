import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.bench import imports
from core.cli import main
from core.data import health, images, importer, samples, splits, tfdata
from core.data.limits import ImportLimits
from core.errors import DatasetError
from core.store import datasets


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
    info = importer.import_path(src, ws)
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
    img, _ = images.normalize_image(buf.getvalue())
    assert img.getpixel((0, 0)) == (255, 255, 255)
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), 30000, dtype=np.uint16)).save(buf, "PNG")
    img, _ = images.normalize_image(buf.getvalue())
    assert img.mode == "RGB" and img.getpixel((0, 0))[0] == 255


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    upright, original = images.normalize_image(buf.getvalue())
    assert original == (40, 20) and upright.size == (20, 40)


def test_decompression_bomb_is_an_error():
    buf = io.BytesIO()
    Image.new("L", (3000, 3000)).save(buf, "PNG")
    with pytest.raises(DatasetError, match="decompression bomb"):
        images.normalize_image(buf.getvalue(), ImportLimits(max_pixels=1_000_000))


def test_zip_with_wrapping_folder_imports(ws, tmp_path):
    files = {f"my photos/{c}/{i}.png": _png((i * 40, 0, 0)) for c in ("a", "b") for i in range(3)}
    files["my photos/a/inner.zip"] = b"PK"
    info = importer.import_path(_zip(tmp_path / "set.zip", files), ws)
    assert info["counts"] == {"a": 3, "b": 3}
    assert any("archive inside the archive" in s["reason"] for s in info["skipped"])


@pytest.mark.parametrize("evil", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_zip_path_traversal_is_refused_and_leaves_nothing(ws, tmp_path, evil):
    files = {f"{c}/{i}.png": _png() for c in ("a", "b") for i in range(3)}
    files[evil] = _png()
    with pytest.raises(DatasetError, match="points outside the archive"):
        importer.import_path(_zip(tmp_path / "evil.zip", files), ws)
    assert not (tmp_path / "evil.png").exists()
    assert list((ws / "datasets").glob("*")) == [] if (ws / "datasets").exists() else True


def test_zip_symlink_member_is_skipped(ws, tmp_path):
    path = _zip(tmp_path / "links.zip", {f"{c}/{i}.png": _png() for c in ("a", "b") for i in range(2)})
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("a/link.png")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    result = importer.import_path(path, ws)
    assert {"file": "a/link.png", "reason": "symbolic link (not followed)"} in result["skipped"]


def test_zip_bomb_entry_is_skipped_unread_and_caps_are_refused(ws, tmp_path, monkeypatch):
    good = {f"{c}/{i}.png": _png() for c in ("a", "b") for i in range(15)}
    bomb = _zip(tmp_path / "bomb.zip", {**good, "a/x.png": b"\0" * 5_000_000})
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(getattr(name, "filename", name))
                        or real_open(self, name, *a, **k))
    result = importer.import_path(bomb, ws)
    assert result["counts"] == {"a": 15, "b": 15}
    assert [s["file"] for s in result["skipped"]] == ["a/x.png"]
    assert "possible zip bomb" in result["skipped"][0]["reason"] and "a/x.png" not in opened  # never decompressed
    many = _zip(tmp_path / "many.zip", {f"a/{i}.png": _png() for i in range(6)})
    with pytest.raises(DatasetError, match="more than the limit of 5"):
        importer.import_path(many, ws, limits=ImportLimits(max_members=5))
    with pytest.raises(DatasetError, match="not a readable zip"):
        importer.import_path(_write(tmp_path, {"fake.zip": b"nope"}) / "fake.zip", ws)


def test_failed_import_leaves_no_folder(ws, tmp_path):
    src = _write(tmp_path / "src", {"a/1.png": _png(), "a/2.png": _png(), "b/1.png": _png(), "b/bad.png": b"x"})
    with pytest.raises(DatasetError, match="class 'b' has 1 readable image"):
        importer.import_path(src, ws)
    assert [p for p in (ws / "datasets").iterdir()] == []


def test_single_class_and_empty_sources_are_refused(ws, tmp_path):
    one = _write(tmp_path / "one", {"a/1.png": _png(), "a/2.png": _png()})
    with pytest.raises(DatasetError, match="Only one class"):
        importer.import_path(one, ws)
    flat = _write(tmp_path / "flat", {"1.png": _png(), "2.png": _png()})
    with pytest.raises(DatasetError, match="No images inside class folders"):
        importer.import_path(flat, ws)
    with pytest.raises(DatasetError, match="does not exist"):
        importer.import_path(tmp_path / "missing", ws)


def test_split_is_stratified_disjoint_and_deterministic():
    info = {"classes": ["a", "b", "c"], "images": {c: [f"{c}/{i}.jpg" for i in range(n)] for c, n in (("a", 40), ("b", 20), ("c", 100))}}
    parts = splits.split(info, 0.15, 0.15, seed=3)
    everything = parts["train"] + parts["val"] + parts["test"]
    assert sorted(everything) == sorted((f, i) for i, c in enumerate(info["classes"]) for f in info["images"][c])
    for index, n in enumerate((40, 20, 100)):
        for name in ("val", "test"):
            count = sum(1 for _, label in parts[name] if label == index)
            assert count == max(1, round(n * 0.15))
    assert splits.split(info, 0.15, 0.15, seed=3) == parts
    assert splits.split(info, 0.15, 0.15, seed=4) != parts


def test_pipeline_streams_resized_batches(tiny, ws):
    parts = splits.split(tiny, 0.2, 0.2, seed=0)
    ds = tfdata.pipeline(datasets.dataset_path(tiny["id"], ws), parts["train"], 32, 5, True, 0)
    images, labels = next(iter(ds))
    assert images.shape == (5, 32, 32, 3) and images.dtype.name == "float32"
    assert float(images.numpy().max()) > 1.0  # raw 0-255 pixels; preprocessing is inside the model
    assert set(labels.numpy().tolist()) <= {0, 1, 2}
    assert sum(int(b[1].shape[0]) for b in ds) == len(parts["train"])


def test_shapes_sample_is_deterministic_and_big_enough(ws, tmp_path):
    a = samples.generate_shapes(tmp_path / "a", per_class=3, seed=5)
    b = samples.generate_shapes(tmp_path / "b", per_class=3, seed=5)
    for f in a.rglob("*.png"):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes()
    info = samples.import_sample("shapes", ws)
    assert len(info["classes"]) >= 4
    assert min(info["counts"].values()) >= 80
    assert not info["skipped"]
    with pytest.raises(DatasetError, match="available samples: shapes"):
        samples.import_sample("cats", ws)


def test_check_trainable_names_the_small_class():
    with pytest.raises(DatasetError, match="Class 'b' has only 4 images"):
        health.check_trainable({"counts": {"a": 50, "b": 4}})


# ---------------------------------------------------------------- predefined splits, unlabeled images, documents


def _split_zip(path: Path, with_val: bool = True) -> Path:
    files = {}
    for part, n in (("train", 6), ("val", 2), ("test", 3)):
        if part == "val" and not with_val:
            continue
        for c, colour in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
            for i in range(n):
                files[f"set/{part}/{c}/{i}.png"] = _png((colour[0] + i, 0, colour[2] + i))
    files["set/unlabeled/x.png"] = _png((9, 9, 9))
    files["set/unlabeled/deeper/y.png"] = _png((8, 8, 8))
    return _zip(path, files)


def test_predefined_split_is_kept_by_split(ws, tmp_path):
    info = importer.import_path(_split_zip(tmp_path / "split.zip"), ws)
    assert info["classes"] == ["a", "b"] and info["counts"] == {"a": 11, "b": 11}
    given = info["predefined_split"]
    assert {p: len(v) for p, v in given.items()} == {"train": 12, "val": 4, "test": 6}
    for seed in (0, 1):  # the fractions and the seed do not move a predefined split
        parts = splits.split(info, 0.3, 0.3, seed)
        assert {p: sorted(rel for rel, _ in parts[p]) for p in parts} == {p: sorted(v) for p, v in given.items()}
    parts = splits.split(info, 0.3, 0.3, 0)
    label_of = {rel: i for i, c in enumerate(info["classes"]) for rel in info["images"][c]}
    assert all(label_of[rel] == index for items in parts.values() for rel, index in items)
    # Unlabeled images are stored aside: not a class, not in the split, not in the content hashes.
    assert len(info["unlabeled"]) == 2 and all(rel.startswith("unlabeled/") for rel in info["unlabeled"])
    assert not set(info["unlabeled"]) & set(info["hashes"])
    assert all((datasets.dataset_path(info["id"], ws) / rel).is_file() for rel in info["unlabeled"])
    assert info["report"]["split"]["predefined"] and info["report"]["unlabeled"] == 2


def test_a_missing_validation_part_is_drawn_from_training(ws, tmp_path):
    info = importer.import_path(_split_zip(tmp_path / "split.zip", with_val=False), ws)
    parts = splits.split(info, 0.34, 0.15, seed=3)
    assert sorted(rel for rel, _ in parts["test"]) == sorted(info["predefined_split"]["test"])
    val_per_class = [sum(1 for _, i in parts["val"] if i == k) for k in (0, 1)]
    assert val_per_class == [2, 2]  # 34% of each class's 6 training images
    train = {rel for rel, _ in parts["train"]}
    assert len(train) == 8 and not train & {rel for rel, _ in parts["val"]}
    assert splits.split(info, 0.34, 0.15, seed=3) == parts


def test_a_class_missing_from_the_train_folder_is_refused(ws, tmp_path):
    files = {f"train/a/{i}.png": _png() for i in range(3)} | {f"test/a/{i}.png": _png() for i in range(2)}
    files |= {f"test/b/{i}.png": _png() for i in range(2)}
    with pytest.raises(DatasetError, match="The class 'b' has no images in the train folder"):
        importer.import_path(_zip(tmp_path / "s.zip", files), ws)
    assert list((ws / "datasets").iterdir()) == []


def test_train_and_test_as_classes_when_images_sit_directly_inside(ws, tmp_path):
    files = {f"{c}/{i}.png": _png((i * 30, 0, 0)) for c in ("train", "test") for i in range(2)}
    info = importer.import_path(_zip(tmp_path / "trains.zip", files), ws)
    assert info["classes"] == ["test", "train"] and info["predefined_split"] is None


def test_unlabeled_folder_given_separately(ws, tmp_path):
    src = _write(tmp_path / "src", {f"{c}/{i}.png": _png((i, 0, 0)) for c in ("a", "b") for i in range(2)})
    extra = _write(tmp_path / "extra", {"one.png": _png(), "sub/two.png": _png(), "notes.txt": b"x"})
    info = importer.import_path(src, ws, unlabeled=extra)
    assert len(info["unlabeled"]) == 2 and info["counts"] == {"a": 2, "b": 2}
    assert {"file": "unlabeled/notes.txt", "reason": "not an image file type (.txt)"} in info["skipped"]


# ---------------------------------------------------------------- images uploaded class by class


def test_import_classes_builds_a_dataset_from_uploads(ws):
    classes = [("Ripe", [(f"r{i}.png", _png((200, i, 0))) for i in range(3)]),
               ("Unripe", [(f"u{i}.jpg", (lambda i=i: _png((0, 200, i)))) for i in range(2)] + [("notes.txt", b"x")])]
    seen = []
    info = importer.import_classes(classes, ws, "Tomatoes", unlabeled=[("u.png", _png())],
                                   progress=lambda f, t: seen.append(f))
    assert info["name"] == "Tomatoes" and info["id"].startswith("tomatoes-")
    assert info["counts"] == {"Ripe": 3, "Unripe": 2} and len(info["unlabeled"]) == 1
    assert info["skipped"] == [{"file": "Unripe/notes.txt", "reason": "not an image file type (.txt)"}]
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


@pytest.mark.parametrize("classes, message", [
    ([("a", [("1.png", _png())] * 2), ("A ", [("2.png", _png())] * 2)], "Two classes are both named 'a'"),
    ([("a", [("1.png", _png())] * 2), ("", [("2.png", _png())] * 2)], "Class 2 has no name"),
    ([("a", [("1.png", _png())] * 2)], "at least two classes"),
    ([("a", [("1.png", _png())] * 2), ("b", [])], "The class 'b' has no images yet"),
    ([("a", [("1.png", _png())] * 2), ("b", [("b.txt", b"x")])], "The class 'b' has no image files"),
    ([("a", [("1.png", _png())] * 2), ("b", [("1.png", _png()), ("2.png", b"broken")])], "The class 'b' has 1 readable"),
])
def test_import_classes_refusals(ws, classes, message):
    with pytest.raises(DatasetError, match=message):
        importer.import_classes(classes, ws, "x")
    assert not (ws / "datasets").exists() or list((ws / "datasets").iterdir()) == []


def test_import_upload_reads_an_open_zip(ws, tmp_path):
    data = _zip(tmp_path / "u.zip", {f"{c}/{i}.png": _png((i, 0, 0)) for c in ("a", "b") for i in range(2)}).read_bytes()
    info = importer.import_upload(io.BytesIO(data), "holiday pics.zip", ws)
    assert info["name"] == "holiday pics" and info["source"] == "holiday pics.zip"
    assert info["counts"] == {"a": 2, "b": 2}


# ---------------------------------------------------------------- tar archives and the flowers sample


def _tgz(path: Path, files: dict[str, bytes], link: str | None = None) -> Path:
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        if link:
            member = tarfile.TarInfo(link)
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(member)
    return path


FLOWER_FILES = {f"flower_photos/{c}/{i}.jpg": _png((i * 20, 100, 0)) for c in ("daisy", "roses") for i in range(3)}
FLOWER_FILES["flower_photos/LICENSE.txt"] = b"All images in this archive are licensed under CC-BY 2.0."


def test_tar_import_with_links_skipped_and_traversal_refused(ws, tmp_path):
    info = importer.import_path(_tgz(tmp_path / "f.tgz", FLOWER_FILES, link="flower_photos/daisy/link.jpg"), ws)
    assert info["counts"] == {"daisy": 3, "roses": 3}
    assert info["skipped"] == [{"file": "flower_photos/daisy/link.jpg", "reason": "symbolic link (not followed)"}]
    root = datasets.dataset_path(info["id"], ws)
    assert "CC-BY" in (root / "docs" / "LICENSE.txt").read_text()
    with pytest.raises(DatasetError, match="points outside the archive"):
        importer.import_path(_tgz(tmp_path / "evil.tar.gz", {**FLOWER_FILES, "../evil.jpg": _png()}), ws)
    assert not (tmp_path / "evil.jpg").exists()
    (tmp_path / "cut.tgz").write_bytes((tmp_path / "f.tgz").read_bytes()[:200])
    with pytest.raises(DatasetError, match="'cut.tgz' is damaged"):
        importer.import_path(tmp_path / "cut.tgz", ws)
    assert [p.name for p in (ws / "datasets").iterdir()] == [info["id"]]


def test_flowers_sample_offline_is_one_sentence(ws, monkeypatch):
    monkeypatch.setenv("TL_OFFLINE", "1")
    with pytest.raises(DatasetError) as caught:
        samples.import_sample("flowers", ws)
    assert str(caught.value) == samples.FLOWERS_OFFLINE and str(caught.value).count(".") == 1
    # Without the switch, an unreachable server gives the same sentence and leaves nothing behind.
    monkeypatch.delenv("TL_OFFLINE")
    monkeypatch.setattr(samples, "FLOWERS_URL", "http://127.0.0.1:9/flower_photos.tgz")
    with pytest.raises(DatasetError, match="could not be downloaded"):
        samples.import_sample("flowers", ws)
    assert list((ws / "datasets").iterdir()) == []


def test_flowers_sample_downloads_with_progress_and_keeps_the_licence(ws, tmp_path, monkeypatch):
    archive = _tgz(tmp_path / "flower_photos.tgz", FLOWER_FILES)
    monkeypatch.delenv("TL_OFFLINE", raising=False)
    monkeypatch.setattr(samples, "FLOWERS_URL", archive.as_uri())
    seen: list[tuple[float, str]] = []
    info = samples.import_sample("flowers", ws, progress=lambda f, t: seen.append((f, t)))
    assert info["name"] == "flowers" and info["counts"] == {"daisy": 3, "roses": 3}
    assert info["documents"] == ["docs/LICENSE.txt"] and info["skipped"] == []
    downloads = [f for f, t in seen if t.startswith("Downloading")]
    assert downloads and downloads[-1] == 1.0
    assert seen[-1][0] == 1.0
    assert [p.name for p in (ws / "datasets").iterdir()] == [info["id"]]  # the download is gone


# ---------------------------------------------------------------- health report


def test_duplicates_within_and_across_classes_are_found(ws, tmp_path):
    same, other = _png((1, 2, 3)), _png((4, 5, 6))
    src = _write(tmp_path / "src", {
        "a/1.png": same, "a/2.png": same, "a/3.png": _png((7, 8, 9)),
        "b/1.png": other, "b/2.png": _png((9, 9, 9)), "c/1.png": other, "c/2.png": _png((10, 10, 10)),
    })
    info = importer.import_path(src, ws)
    dups = info["duplicates"]
    assert [g["classes"] for g in dups["within"]] == [["a"]] and len(dups["within"][0]["files"]) == 2
    assert [g["classes"] for g in dups["across"]] == [["b", "c"]]
    assert any("exact copies of another image in the same class" in w for w in info["warnings"])
    assert any("appear in more than one class" in w for w in info["warnings"])
    assert info["report"]["duplicates"] == {"within": 1, "across": 1}


def test_health_report_counts_sizes_balance_and_split(ws, tmp_path):
    files = {f"big/{i}.png": _png((i, 0, 0), size=(80, 70)) for i in range(12)}
    files |= {f"small/{i}.png": _png((0, i, 0), size=(8, 40)) for i in range(3)}
    info = importer.import_path(_write(tmp_path / "src", files), ws)
    report = health.health_report(info, 0.25, 0.25, 1)
    assert report["imbalance_ratio"] == 4.0 and report["imbalanced"]
    assert "Class weights are applied automatically" in report["remedy"]
    assert report["too_small_to_train"] == ["small"] and report["below_advised"] == ["big"]
    assert report["sizes"]["width"] == {"min": 8, "median": 80, "max": 80} and report["sizes"]["small"] == 3
    counts = report["split"]["counts"]
    assert counts == {"big": {"train": 6, "val": 3, "test": 3}, "small": {"train": 1, "val": 1, "test": 1}}
    assert any("imbalanced" in w for w in info["warnings"])
    # Datasets stored before the report existed (no hashes, no sizes) still get one.
    old = {k: v for k, v in info.items() if k not in ("hashes", "image_sizes", "report", "duplicates")}
    assert health.health_report(old)["duplicates"] == {"within": 0, "across": 0}


def test_too_few_to_split_is_a_sentence_in_the_report():
    info = {"classes": ["a", "b"], "counts": {"a": 2, "b": 5}, "images": {"a": ["a/1", "a/2"], "b": [f"b/{i}" for i in range(5)]}}
    report = health.health_report(info)
    assert report["split"]["counts"] is None and "fewer than 3 images" in report["split"]["problem"]


@pytest.mark.parametrize("kind, items", [("audio", "clips"), ("text", "texts")])
def test_the_shared_sentences_speak_of_the_datasets_own_items(kind, items):
    few = {"kind": kind, "name": "d", "classes": ["a", "b"], "counts": {"a": 2, "b": 5},
           "images": {"a": ["a/1", "a/2"], "b": [f"b/{i}" for i in range(5)]}}
    report = health.health_report(few)
    assert f"fewer than 3 {items}, too few to split into training, validation and test {items}" in report["split"]["problem"]
    assert f"adding {items} to the smallest classes" in report["remedy"] and "images" not in report["remedy"]
    unlabelled = {"kind": kind, "name": "u", "classes": [], "counts": {}, "images": {}, "unlabeled": ["x/1", "x/2"]}
    assert f"2 unlabelled {items} from where" in health.unlabelled_report(unlabelled)["note"]
    with pytest.raises(DatasetError, match=f"holds only unlabelled {items}"):
        health.check_trainable(unlabelled)


# ---------------------------------------------------------------- decoding speed-ups, limits, thumbnails


def test_large_jpeg_is_decoded_at_reduced_scale_and_stored_at_most_1024():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1300, 2600, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    stored, original = images.normalize_image(buf.getvalue())
    assert original == (2600, 1300) and stored.size == (1024, 512)


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("TL_IMPORT_MAX_FILE_MB", "2")
    monkeypatch.setenv("TL_IMPORT_MAX_MEMBERS", "10")
    limits = ImportLimits.from_env()
    assert limits.max_file_bytes == 2 * 2**20 and limits.max_members == 10 and limits.max_ratio == 100.0
    monkeypatch.setenv("TL_IMPORT_MAX_RATIO", "lots")
    with pytest.raises(DatasetError, match="TL_IMPORT_MAX_RATIO='lots' must be a positive number"):
        ImportLimits.from_env()


def test_a_file_over_the_size_cap_is_skipped_with_its_reason(ws, tmp_path):
    src = _write(tmp_path / "src", {f"{c}/{i}.png": _png() for c in ("a", "b") for i in range(2)} | {"a/big.png": b"\0" * 3000})
    info = importer.import_path(src, ws, limits=ImportLimits(max_file_bytes=2000))
    assert info["skipped"] == [{"file": "a/big.png", "reason": "larger than 2 KB"}]


def test_thumbnail_is_a_small_jpeg(tiny, ws):
    path = datasets.dataset_path(tiny["id"], ws) / tiny["images"]["circle"][0]
    with Image.open(io.BytesIO(images.thumbnail(path, 24))) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 24


def test_runs_using_names_the_runs_of_a_dataset(ws):
    for run, dataset in (("r1", "a-00000000"), ("r2", "b-00000000"), ("r3", "a-00000000")):
        (ws / "runs" / run).mkdir(parents=True)
        (ws / "runs" / run / "config.json").write_text(json.dumps({"dataset_id": dataset}))
    assert datasets.runs_using("a-00000000", ws) == ["r1", "r3"]


# ---------------------------------------------------------------- command line


def test_cli_dataset_import_show_and_delete(ws, tmp_path, capsys):

    src = _split_zip(tmp_path / "split.zip")
    assert main(["dataset", "import", str(src), "--max-members", "5"]) == 2
    assert "more than the limit of 5" in capsys.readouterr().err
    assert main(["dataset", "import", str(src), "--name", "My set", "--json"]) == 0
    brief = json.loads(capsys.readouterr().out)
    assert brief["predefined_split"] and brief["unlabeled"] == 2 and brief["id"].startswith("my-set-")
    assert main(["dataset", "show", brief["id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["report"]["split"]["counts"] == {"a": {"train": 6, "val": 2, "test": 3}, "b": {"train": 6, "val": 2, "test": 3}}
    assert main(["dataset", "delete", brief["id"]]) == 2
    assert "add --yes to confirm" in capsys.readouterr().err
    assert main(["dataset", "delete", brief["id"], "--yes"]) == 0
    assert datasets.list_datasets(ws) == []


def test_import_benchmark_reports_speed_and_memory(tmp_path):

    src = tmp_path / "photos"
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40, 30), (i * 50, 0, 0)).save(src / c / f"{i}.jpg")
    result = imports.run(src, small=4)
    assert [r["images"] for r in result["rows"]] == [4, 8, 8]
    assert all(r["images_per_second"] > 0 and r["peak_rss_mb"] >= r["rss_before_import_mb"] > 0 for r in result["rows"])
    assert "images/s" in imports.describe(result)


def test_folder_symlinks_are_not_followed(ws, tmp_path):
    outside = _write(tmp_path / "outside", {"secret.png": _png((1, 1, 1)), "more/x.png": _png((2, 2, 2))})
    src = _write(tmp_path / "src", {f"{c}/{i}.png": _png((i, 0, 0)) for c in ("a", "b") for i in range(2)})
    (src / "a" / "link.png").symlink_to(outside / "secret.png")
    (src / "c").symlink_to(outside / "more", target_is_directory=True)
    info = importer.import_path(src, ws)
    assert info["counts"] == {"a": 2, "b": 2}
    assert info["skipped"] == [{"file": "a/link.png", "reason": "symbolic link (not followed)"},
                               {"file": "c", "reason": "symbolic link (not followed)"}]


def test_archive_of_unreadable_files_names_them_and_their_reasons(ws, tmp_path):
    members = {f"cats/{i}.jpg": b"not a photo" for i in range(7)} | {"dogs/a.png": b"x", "dogs/b.png": b"y"}
    with pytest.raises(DatasetError) as refused:
        importer.import_path(_zip(tmp_path / "broken.zip", members), ws)
    text = str(refused.value)
    assert "The classes 'cats' (0), 'dogs' (0) have too few readable images" in text
    assert "9 file(s) were set aside: cats/0.jpg: not a readable image" in text and "and 4 more" in text
