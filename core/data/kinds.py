"""The data side of each kind of data: how its files are recognised, decoded with their guards and
stored, what its health report adds, its built-in samples, and how tf.data reads a stored item.

One `DataKind` per kind id of `core.spec.kinds`, its functions in the kind's own module
(`core.data.images` today); the importer, `tfdata.pipeline`, the feature cache and the health report
ask this registry for a dataset's kind instead of assuming images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

from core.data import images, sounds, texts
from core.data.limits import ImportLimits
from core.errors import ConfigError, DatasetError
from core.spec import backbones
from core.spec import kinds as spec_kinds
from core.store.files import read_json

SNIFF_BYTES = 64  # the head of a file that `sniff` sees
SNIFFED_AT_MOST = 16  # files read to guess a source's kind when no extension decides

# One stored item: its suffix (".jpg"), its bytes, and facts the kind records about it ({"size": [w, h]}).
Stored = tuple[str, bytes, dict]


@dataclass(frozen=True)
class DataKind:
    """The functions that make one kind of data a dataset; every field is required."""

    id: str  # a kind id of core.spec.kinds
    # (file name, its first SNIFF_BYTES bytes) -> True when the content is of this kind.
    sniff: Callable[[str, bytes], bool]
    # (file name, bytes, limits) -> the items to store (a long recording may give several windows);
    # a bad file raises DatasetError with a sentence, and the importer sets it aside with it.
    normalise: Callable[[str, bytes, ImportLimits], list[Stored]]
    # The labelled items' facts (one dict per stored item) -> fields dataset.json keeps.
    record: Callable[[list[dict]], dict]
    # dataset.json -> the kind's own facts in the health report (images: {"sizes": ...}).
    health: Callable[[dict], dict]
    # The built-in sample datasets of this kind (names of core.data.samples).
    samples: tuple[str, ...]
    # The run's input size (images: pixels a side; a kind without one ignores it) -> a function, inside
    # tf.data, from a stored item's path tensor to the model's input tensor (TensorFlow imported inside).
    load: Callable[[int], Callable[[Any], Any]]
    # A training pass's reading where the run's time shift is on, when it differs from `load`: (dataset.json,
    # input size) -> (a `load` function drawing a random view of an item, how many views of each item make one
    # epoch). Sounds: a random second of a longer stored clip, as many per epoch as the window has seconds.
    # None: `load` everywhere.
    load_random: Callable[[dict, int], tuple[Callable[[Any], Any], int]] | None = None
    # Kinds that cut a long item into pieces of a chosen length (sounds: seconds): the chosen length or None
    # for the default -> (the length used, the `normalise` that cuts so); a length out of range raises
    # DatasetError. None: the kind cuts nothing, and a chosen length is ignored.
    cutting: Callable[[float | None], tuple[float, Callable[[str, bytes, ImportLimits], list[Stored]]]] | None = None

    @property
    def spec(self) -> spec_kinds.Kind:
        """The kind's words and choices (core.spec.kinds)."""
        return spec_kinds.get(self.id)


DATA_KINDS: dict[str, DataKind] = {}


def register(kind: DataKind) -> DataKind:
    """Add the data side of a kind (its core.spec.kinds entry must exist); returns it."""
    spec_kinds.get(kind.id)
    if kind.id in DATA_KINDS:
        raise ConfigError(f"The data side of the kind '{kind.id}' is registered already.")
    DATA_KINDS[kind.id] = kind
    return kind


def get(kind_id: str) -> DataKind:
    """The data side of a kind, by id; a sentence when no module reads that kind."""
    spec_kinds.get(kind_id)
    if kind_id not in DATA_KINDS:
        raise DatasetError(f"This version of the app cannot read {spec_kinds.get(kind_id).items} yet.")
    return DATA_KINDS[kind_id]


def of(info: dict) -> DataKind:
    """The data side of a dataset record's kind (a record without "kind" holds images)."""
    return get(spec_kinds.of(info).id)


def of_root(root: Path) -> DataKind:
    """The data side of the kind of the dataset stored in this folder (images when it has no record)."""
    record_file = Path(root) / "dataset.json"
    return of(read_json(record_file)) if record_file.is_file() else get(spec_kinds.DEFAULT)


def detect(files: Sequence[tuple[str, Callable[[], bytes]]]) -> str:
    """The kind of a source's files: the kind whose extensions most of them have, else the one their
    content sniffs as (a few files read), else images."""
    counts = {k: sum(PurePosixPath(n).suffix.lower() in spec_kinds.get(k).extensions for n, _ in files)
              for k in DATA_KINDS}
    best = max(counts.values(), default=0)
    if best and list(counts.values()).count(best) == 1:
        return max(counts, key=counts.__getitem__)
    for name, read in files[:SNIFFED_AT_MOST]:
        try:
            head = read()[:SNIFF_BYTES]
        except DatasetError:
            continue
        found = [k for k, data_kind in DATA_KINDS.items() if data_kind.sniff(name, head)]
        if len(found) == 1:
            return found[0]
    return spec_kinds.DEFAULT


def check_backbone(info: dict, backbone_id: str) -> None:
    """Refuse, in one sentence, a backbone that reads another kind of data than the dataset holds."""
    kind, spec = spec_kinds.of(info), backbones.get(backbone_id)
    if spec.kind != kind.id:
        choices = ", ".join(backbones.for_kind(kind.id)[:4]) or "none yet"
        raise ConfigError(
            f"The backbone '{backbone_id}' reads {spec_kinds.get(spec.kind).items}, but the dataset "
            f"'{info.get('name', info.get('id'))}' holds {kind.items}; choose a backbone for {kind.items} "
            f"(for example {choices}).")


IMAGES = register(DataKind(
    id="image", sniff=images.sniff, normalise=images.normalise, record=images.record, health=images.health_facts,
    samples=("shapes", "shapes-field", "flowers"), load=images.loader,
))

SOUNDS = register(DataKind(
    id="audio", sniff=sounds.sniff, normalise=sounds.normalise, record=sounds.record, health=sounds.health_facts,
    samples=("sounds",), load=sounds.loader, load_random=sounds.random_loader, cutting=sounds.cutting,
))

TEXTS = register(DataKind(
    id=texts.KIND, sniff=texts.sniff, normalise=texts.normalise, record=texts.record, health=texts.health_facts,
    samples=("texts",), load=texts.loader,
))
