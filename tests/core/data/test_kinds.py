"""The kind-of-data registries: the image entry, records saying their kind, and a toy kind registered here."""

import io
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import health, importer, kinds, samples, tfdata
from core.data.limits import ImportLimits
from core.errors import ConfigError, DatasetError
from core.ship import card
from core.spec import backbones
from core.spec import kinds as spec_kinds
from core.spec.config import AugmentConfig, RunConfig, augment_kinds
from core.store import datasets


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 16), colour).save(buf, "PNG")
    return buf.getvalue()


def _numbers(data: bytes) -> list[float]:
    try:
        values = [float(v) for v in data.decode("ascii").split()]
    except (UnicodeDecodeError, ValueError):
        raise DatasetError("not a readable vector (not numbers separated by spaces)") from None
    if len(values) != 4:
        raise DatasetError(f"not a readable vector (it holds {len(values)} numbers, not 4)")
    return values


def _vector_loader(size: int):
    import tensorflow as tf

    def load(path):
        return tf.strings.to_number(tf.strings.split(tf.strings.strip(tf.io.read_file(path))), tf.float32)

    return load


VECTOR = spec_kinds.Kind(id="vector", label="Vectors", item="vector", items="vectors", extensions=(".vec",),
                         hand_in=("text",), explain="none", gallery="snippet", default_backbone="toy_dense")
VECTOR_DATA = kinds.DataKind(
    id="vector", sniff=lambda name, head: head[:1].isdigit(),
    normalise=lambda name, data, limits: [(".vec", " ".join(map(str, _numbers(data))).encode(), {})],
    record=lambda facts: {}, health=lambda info: {"length": 4}, samples=(), load=_vector_loader)


@pytest.fixture
def vector_kind(monkeypatch):
    monkeypatch.setitem(spec_kinds.KINDS, "vector", VECTOR)
    monkeypatch.setitem(kinds.DATA_KINDS, "vector", VECTOR_DATA)
    return VECTOR


def _vectors(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, centre in (("low", 0.0), ("high", 5.0)):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            (folder / label / f"{i}.vec").write_text(" ".join(f"{v:.3f}" for v in rng.normal(centre, 0.5, 4)))
    (folder / "low" / "bad.vec").write_text("1 2 x")
    (folder / "high" / "photo.png").write_bytes(_png((1, 2, 3)))
    return folder


def test_the_image_kind_is_registered_on_every_floor():
    image = spec_kinds.get("image")
    assert (image.label, image.item, image.items, image.gallery, image.explain) == (
        "Images", "image", "images", "thumbnail", "gradcam")
    assert ".jpg" in image.extensions and image.hand_in[0] == "file"
    assert spec_kinds.ids()[0] == "image" and kinds.get("image").spec is image
    assert backbones.get(image.default_backbone).kind == "image"
    assert {backbones.get(b).kind for b in backbones.ids()} <= set(spec_kinds.ids())
    assert set(backbones.KERAS_APPLICATIONS) <= {backbones.get(b).constructor[1] for b in backbones.for_kind("image")}
    assert kinds.of({}).id == "image"  # a record made before kinds holds images
    with pytest.raises(ConfigError, match="'sound' is not a kind of data"):
        spec_kinds.get("sound")
    with pytest.raises(ConfigError, match="registered already"):
        spec_kinds.register(image)


def test_a_kind_with_a_bad_choice_is_refused_with_a_sentence():
    with pytest.raises(ConfigError, match="'hologram'"):
        spec_kinds.Kind(id="x", label="X", item="x", items="xs", extensions=(".x",), hand_in=("hologram",),
                        explain="none", gallery="snippet", default_backbone="")


def test_an_image_import_records_its_kind_and_sniffing_finds_images(ws, tmp_path):
    src = tmp_path / "src"
    for label, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        (src / label).mkdir(parents=True)
        for i in range(2):
            (src / label / f"{i}.png").write_bytes(_png(colour))
    info = importer.import_path(src, ws)
    assert info["kind"] == "image" and datasets.load_dataset(info["id"], ws)["kind"] == "image"
    assert kinds.detect([("a", lambda: _png((1, 1, 1)))]) == "image"  # no extension: the content decides


def test_a_toy_kind_imports_reads_through_tfdata_and_refuses_image_backbones(ws, tmp_path, vector_kind):
    info = importer.import_path(_vectors(tmp_path / "src"), ws)  # the kind is found from the extensions
    assert info["kind"] == "vector" and info["counts"] == {"high": 6, "low": 6}
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert reasons == {"low/bad.vec": "not a readable vector (not numbers separated by spaces)",
                       "high/photo.png": "not a vector file type (.png)"}
    assert info["report"]["length"] == 4 and "sizes" not in info["report"]
    root = datasets.dataset_path(info["id"], ws)
    assert (root / info["images"]["low"][0]).suffix == ".vec"
    batch, labels = next(iter(tfdata.pipeline(root, [(info["images"]["high"][0], 1)], 224, 4, False, 0)))
    assert batch.shape == (1, 4) and float(batch.numpy().mean()) > 2.5 and labels.numpy().tolist() == [1]
    with pytest.raises(ConfigError, match="reads images, but the dataset .* holds vectors"):
        health.check_trainable(info, "mobilenet_v2_1.0")


def test_a_kind_without_a_data_module_says_so(monkeypatch, ws, tmp_path):
    monkeypatch.setitem(spec_kinds.KINDS, "vector", VECTOR)
    with pytest.raises(DatasetError, match="cannot read vectors yet"):
        importer.import_path(_vectors(tmp_path / "src"), ws, kind="vector", limits=ImportLimits())


def test_every_built_in_sample_belongs_to_exactly_one_kind():
    listed = [name for data_kind in kinds.DATA_KINDS.values() for name in data_kind.samples]
    assert sorted(listed) == sorted(samples.SAMPLES)


def test_a_kinds_augmentations_and_card_words_come_from_its_registry_entry(vector_kind, monkeypatch):
    owners = augment_kinds()
    assert set(owners) <= {f.name for f in fields(AugmentConfig)}  # every name a real setting
    assert owners["flip"] == "image" and owners["noise"] == "audio" and "text" not in owners.values()
    # A kind registered later (a plug-in) is seen at once: its augmentation and its card sentences.
    noisy = replace(VECTOR, augments=("noise",), differently="Vectors measured differently drift.",
                    input_note="It reads {size} numbers.")
    monkeypatch.setitem(spec_kinds.KINDS, "vector", noisy)
    assert augment_kinds()["noise"] == "vector"
    lines = card._use_and_limits(RunConfig(dataset_id="d", image_size=4), ["low", "high"],
                                 {"train": [6, 6]}, [], None, noisy)
    assert "- It learned from 12 training vectors. Vectors measured differently drift." in lines
    assert "- It reads 4 numbers." in lines
