"""The kinds of data a dataset can hold (images today; sounds and texts plug in the same way).

A kind is one registry entry: its words for sentences, the files it reads, how a person hands one
item to the app, how a prediction is explained and how an item is shown. The data side of a kind
(decoding, health facts, the tf.data loader) is `core.data.kinds`, the model side (the raw input,
its augmentation, explanations) `core.engine.inputs`; both are keyed by the same id.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError

HAND_IN = ("file", "camera", "microphone", "text")  # how a person gives the app one item to predict
EXPLAIN = ("gradcam", "gradcam_spectrogram", "words", "none")  # how a prediction is explained
GALLERY = ("thumbnail", "player", "snippet")  # how one item is shown in a gallery
DEFAULT = "image"  # the kind of a dataset record that names none (every dataset made before kinds)


@dataclass(frozen=True)
class Kind:
    """What the app says and offers for one kind of data, as data."""

    id: str
    label: str  # plural, for headings and lists: "Images"
    item: str  # one item, in a sentence: "image"
    items: str  # several, in a sentence: "images"
    extensions: tuple[str, ...]  # lower-case suffixes the importer reads, with the dot
    hand_in: tuple[str, ...]  # a subset of HAND_IN, the first one is the default
    explain: str  # one of EXPLAIN
    gallery: str  # one of GALLERY
    default_backbone: str  # a backbone id of this kind, the Model page's first choice
    formats: str = ""  # the file formats in words, for sentences ("JPEG, PNG or WebP"); the extensions if empty
    augments: tuple[str, ...] = ()  # the AugmentConfig fields that change this kind's items; none: it trains without
    differently: str = ""  # the model card's sentence on items made differently from the training ones
    input_note: str = ""  # the model card's line on what the model takes in; {size} is the run's image size

    @property
    def formats_words(self) -> str:
        """The formats it reads, in words for a sentence."""
        return self.formats or ", ".join(e.lstrip(".") for e in self.extensions)

    def __post_init__(self) -> None:
        bad = ([h for h in self.hand_in if h not in HAND_IN] + ([self.explain] if self.explain not in EXPLAIN else [])
               + ([self.gallery] if self.gallery not in GALLERY else []))
        if bad or not self.hand_in:
            raise ConfigError(f"The kind of data '{self.id}' names '{(bad or ['no way to hand an item in'])[0]}', "
                              f"which is not one of {', '.join(HAND_IN + EXPLAIN + GALLERY)}.")
        if any(not e.startswith(".") or e != e.lower() for e in self.extensions):
            raise ConfigError(f"The kind of data '{self.id}' lists extensions that are not lower-case suffixes "
                              "starting with a dot.")


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind of data to the registry (an id already taken is refused); returns it."""
    if kind.id in KINDS:
        raise ConfigError(f"A kind of data called '{kind.id}' is registered already.")
    KINDS[kind.id] = kind
    return kind


def get(kind_id: str) -> Kind:
    """The registered kind with this id; a sentence naming the known kinds otherwise."""
    if kind_id not in KINDS:
        raise ConfigError(f"'{kind_id}' is not a kind of data this app knows; known kinds: {', '.join(KINDS)}.")
    return KINDS[kind_id]


def ids() -> tuple[str, ...]:
    """Every registered kind id, in registration order (images first)."""
    return tuple(KINDS)


def of(info: dict) -> Kind:
    """The kind of a dataset record (dataset.json); a record without "kind" holds images."""
    return get(info.get("kind", DEFAULT))


IMAGE = register(Kind(
    id="image", label="Images", item="image", items="images",
    extensions=(".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"),
    hand_in=("file", "camera"), explain="gradcam", gallery="thumbnail", default_backbone="mobilenet_v2_1.0",
    formats="JPEG, PNG, BMP, GIF, WebP or TIFF",
    augments=("flip", "rotate", "zoom", "contrast", "brightness", "translate"),
    differently=("Photos taken differently (lighting, camera, background, framing) can be classified worse than the "
                 "test figures suggest."),
    input_note="Images are shrunk to {size}×{size} pixels: details smaller than that are lost.",
))

AUDIO = register(Kind(
    id="audio", label="Sounds", item="clip", items="clips",
    extensions=(".wav", ".flac", ".ogg", ".oga", ".mp3"),
    hand_in=("file", "microphone"), explain="gradcam_spectrogram", gallery="player",
    default_backbone="logmel_mobilenet_v1_0.25", formats="WAV, FLAC, OGG or MP3",
    augments=("noise", "gain", "shift", "spec_mask"),
    differently=("Clips recorded differently (microphone, room, background noise, distance) can be classified worse "
                 "than the test figures suggest."),
    input_note=("It hears one second at a time: a longer recording is cut into one-second windows, each classified on "
                "its own."),
))

TEXT = register(Kind(
    id="text", label="Texts", item="text", items="texts", extensions=(".txt",),
    hand_in=("text", "file"), explain="words", gallery="snippet", default_backbone="wordllama",
    formats="a CSV, TSV or JSON Lines table (a text and a label column), or class folders of .txt files",
    differently=("Texts written differently (topic, style, length, language) can be classified worse than the test "
                 "figures suggest."),
))
