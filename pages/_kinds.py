"""How the pages show, take in and explain each kind of data (the faces' side of `core.spec.kinds`).

A kind's entry in `core.spec.kinds` names its choices as words: how one item is shown in a gallery
(`gallery`), how a person hands one item in (`hand_in`) and how a prediction is explained
(`explain`). This module maps the first two to the page functions that draw them (`GALLERIES`,
`HAND_INS`), and keeps per kind id what only a page says (`PAGE_KINDS`); the explanations are
`pages/_explainers.py` (`EXPLAINERS`), apart so that the Data page does not load what explaining needs.
A kind of data adds its entries in these four tables; the Data and Predictions pages ask them
instead of assuming images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from core.data import health, images, sounds
from core.data import kinds as data_kinds
from core.engine import sounds as engine_sounds
from core.errors import TransferLabError
from core.spec import backbones
from core.spec import kinds as spec_kinds
from core.spec.config import AugmentConfig
from core.store import runs
from pages import _charts as charts

# One item handed in to predict: (an id that changes when the item does, its name, its bytes).
HandedIn = tuple[str, str, bytes]


# ---------------------------------------------------------------- a kind's own page words


@dataclass(frozen=True)
class PageKind:
    """What only the pages say or draw for one kind of data (the rest is its `core.spec.kinds` entry)."""

    id: str  # a kind id of core.spec.kinds
    stored_how: str  # one sentence: what the import does to each item before it is stored
    # (dataset.json, its health report) -> draws the kind's own facts in the Data page's health report.
    health_facts: Callable[[dict, dict], None]
    augment_preview: bool  # whether the Data page offers the augmentation preview (random changes of items)
    # (dataset.json, its folder, the switches, a seed) -> draws the preview; None: the Data page's image preview.
    draw_preview: Callable[[dict, Path, AugmentConfig, int], None] | None = None
    own_items: str = ""  # what a person calls their own files of this kind ("pictures"); the kind's `items` if empty
    # (a widget key) -> draws the choice of the length long items are cut into at import and returns it (sounds:
    # seconds); None: the kind cuts nothing.
    window_ui: Callable[[str], float] | None = None


def _image_health_facts(info: dict, report: dict) -> None:
    """The images' sizes as uploaded: a scatter and a sentence."""
    sizes = report.get("sizes") or {}
    if not sizes.get("width"):
        return
    st.plotly_chart(charts.image_sizes(info["image_sizes"]), width="stretch", key="data.sizes_chart")
    st.caption(
        f"Widths {sizes['width']['min']:.0f}-{sizes['width']['max']:.0f} px (median {sizes['width']['median']:.0f}), "
        f"heights {sizes['height']['min']:.0f}-{sizes['height']['max']:.0f} px (median {sizes['height']['median']:.0f}). "
        "Every image is resized to the model's input size when training."
        + (f" {sizes['small']} image(s) are smaller than {health.SMALL_SIDE} px on a side and carry little detail."
           if sizes["small"] else "")
    )


PAGE_KINDS: dict[str, PageKind] = {
    "image": PageKind(
        id="image", stored_how="Every image is checked, turned upright, converted to RGB and stored as a fresh copy",
        health_facts=_image_health_facts, augment_preview=True, own_items="pictures",
    ),
}


def _sound_health_facts(info: dict, report: dict) -> None:
    """The clips' durations, sample rates, silent and clipped clips and near-duplicates, in sentences and a chart."""
    facts = report.get("sounds") or {}
    durations = facts.get("durations")
    if not durations:
        return
    hist = facts["duration_histogram"]
    edges = hist["edges_seconds"]
    st.bar_chart({f"{a:g}-{b:g} s": n for a, b, n in zip(edges, edges[1:], hist["counts"]) if n}, height=160)
    rates = ", ".join(f"{int(r) / 1000:g} kHz ({n})" for r, n in facts["sample_rates"].items())
    window = facts.get("window_seconds", sounds.WINDOW_SECONDS)
    heard = ("; with time shift on, training hears random seconds of each piece; a prediction averages its seconds"
             if window > sounds.CLIP_SECONDS else "")
    lines = [f"Clips last {durations['min']:.1f}-{durations['max']:.1f} s (median {durations['median']:.1f} s); "
             f"sample rates found: {rates}. Each is stored at 16 kHz and a model hears one second.",
             f"Window length: {window:g} s (a recording longer than {sounds.LONG_WINDOWS * window:g} s was cut into "
             f"pieces of {window:g} s, each one example{heard})."]
    if facts["windows_from_long_recordings"]:
        lines.append(f"{facts['windows_from_long_recordings']} pieces of {window:g} s were cut from long recordings.")
    if facts["silent"]:
        lines.append(f"{facts['silent']} clip(s) are silent: check the microphone, or remove them.")
    if facts["clipped"]:
        lines.append(f"{facts['clipped']} clip(s) are clipped (recorded too loud): record them again more quietly.")
    if facts["near_duplicates"]:
        pairs = "; ".join(" and ".join(p) for p in facts["near_duplicates"][:3])
        lines.append(f"{len(facts['near_duplicates'])} pair(s) of clips sound nearly the same (for example {pairs}).")
    st.caption(" ".join(lines))


def _sound_preview(info: dict, root: Path, augment: AugmentConfig, seed: int) -> None:
    """One clip of a chosen class as training hears it and randomly changed: each to listen to, with its
    spectrogram (by the same layer training uses, so loads TensorFlow)."""
    label = st.selectbox("Clip of the class", info["classes"], key="data.preview_class",
                         help="The first clip of this class is changed at random, as training would.")
    try:
        clip = sounds.load_clip((root / info["images"][label][0]).read_bytes())
    except (OSError, IndexError, KeyError, TransferLabError):
        st.caption(f"No clip of '{label}' could be read for the preview.")
        return
    with st.spinner("Applying the changes…"):
        variants = engine_sounds.augmentation_preview(clip, augment, seed, variants=2)
    captions = ["as trained"] + [f"changed {i}" for i in range(1, len(variants))]
    for column, wave, caption in zip(st.columns(len(variants)), variants, captions):
        wav = sounds.to_wav(wave)
        column.audio(wav, format="audio/wav")
        column.image(sounds.spectrogram_picture(wav), caption=f"{label}: {caption} (time across, pitch upwards)",
                     width="stretch", clamp=True)


WINDOW_LABEL = "Window length for long recordings (seconds)"
WINDOW_HELP = ("A long recording is cut into pieces of this many seconds; each piece is one example. One second suits "
               "short sounds (a clap, a word); a few seconds suit longer ones (a bird's song). A model hears one second "
               "at a time: with time shift on, training takes random seconds of a longer piece each epoch, and a "
               "prediction averages the answers for each second.")


def _sound_window_ui(key: str) -> float:
    """The window length long recordings are cut into at import, in seconds (a number input with a plain help)."""
    low, high = sounds.WINDOW_RANGE
    return float(st.number_input(WINDOW_LABEL, min_value=low, max_value=high, value=sounds.WINDOW_SECONDS, step=0.5,
                                 format="%.1f", key=key, help=WINDOW_HELP))


PAGE_KINDS["audio"] = PageKind(
    id="audio", stored_how="Every clip is decoded, mixed down to mono, resampled to 16 kHz and stored as WAV; long "
                           "recordings are cut into windows of the length chosen (one second unless you chose another)",
    health_facts=_sound_health_facts, augment_preview=True, own_items="recordings", draw_preview=_sound_preview,
    window_ui=_sound_window_ui,
)


def window_ui(key: str, kind: spec_kinds.Kind | None = None) -> float | None:
    """The length long items are cut into at import, for a kind that cuts them (sounds); without a kind (a zip or
    folder, whose kind is known once read) for the first kind the app reads that does. None: nothing is cut."""
    ids = [kind.id] if kind is not None else list(spec_kinds.ids())
    draw = next((PAGE_KINDS[k].window_ui for k in ids if k in PAGE_KINDS and PAGE_KINDS[k].window_ui), None)
    return draw(key) if draw else None


def _text_health_facts(info: dict, report: dict) -> None:
    """The texts' lengths (characters and tokens), the words that most set each class apart, and duplicates across
    classes, in sentences and a chart."""
    facts = report.get("texts") or {}
    if facts.get("median_chars") is None:
        return
    chars = facts.get("chars_histogram") or {}
    if chars:
        st.bar_chart({f"{k} characters": n for k, n in chars.items()}, height=160)
    lines = [f"A text has {facts['median_chars']:g} characters in the middle (median), about "
             f"{facts['median_tokens']:g} tokens (word pieces) for the model; a model reads the first few hundred."]
    longest = max((int(k.split("-")[1]) for k in chars), default=0)
    if longest > 1000:
        lines.append("Some texts are longer than 1,000 characters: only their beginning counts.")
    across = (report.get("duplicates") or {}).get("across", 0)
    if across:
        lines.append(f"{across} text(s) appear in more than one class, a likely labelling mistake: they are listed "
                     "below; keep each in its right class only.")
    st.caption(" ".join(lines))
    telling = {label: words for label, words in (facts.get("telling_words") or {}).items() if words}
    if telling:
        st.markdown("**Most telling words per class** (words found far more often in that class's texts than in "
                    "the others'): " + "; ".join(f"*{label}*: {', '.join(words)}" for label, words in telling.items()))
        st.caption("A word that should not decide (a name, a signature, a date) is a hint that the classes differ in "
                   "how they were collected rather than in what they say.")


PAGE_KINDS["text"] = PageKind(
    id="text", stored_how="Every text is read (UTF-8, or Windows-1252 / Latin-1 where it is not), its spaces tidied "
                          "and stored as a .txt file; empty, too long or several-labelled texts are reported",
    health_facts=_text_health_facts, augment_preview=False, own_items="texts",
)


def page_kind(kind: spec_kinds.Kind) -> PageKind:
    """The page side of a kind; a plain one (no extra facts, no preview) for a kind that has none yet."""
    return PAGE_KINDS.get(kind.id) or PageKind(
        id=kind.id, stored_how=f"Every {kind.item} is checked and stored as a fresh copy",
        health_facts=lambda info, report: None, augment_preview=False)


def own_items(kind: spec_kinds.Kind) -> str:
    """What a person calls several of their own items of this kind, in a sentence ("pictures")."""
    return page_kind(kind).own_items or kind.items


# ---------------------------------------------------------------- which kind


def of_dataset(info: dict | None) -> spec_kinds.Kind:
    """The kind of a dataset record (images when there is none, or it says none)."""
    return spec_kinds.of(info or {})


def of_run(run: runs.RunInfo) -> spec_kinds.Kind:
    """The kind of data a run reads: its backbone's kind (images for a run without a config)."""
    if run.config is None:
        return spec_kinds.get(spec_kinds.DEFAULT)
    try:
        return spec_kinds.get(backbones.get(run.config.backbone).kind)
    except TransferLabError:
        return spec_kinds.get(spec_kinds.DEFAULT)


def upload_types(kind: spec_kinds.Kind) -> list[str]:
    """The file types an uploader of items of this kind accepts (without the dot)."""
    return [suffix.lstrip(".") for suffix in kind.extensions]


def kind_ui(key: str, help_text: str) -> spec_kinds.Kind:
    """Which kind of data a person is about to bring in: a choice only when the app reads more than one kind."""
    ids = spec_kinds.ids()
    if len(ids) == 1:
        return spec_kinds.get(ids[0])
    chosen = st.segmented_control("Kind of data", ids, key=key, default=ids[0], help=help_text,
                                  format_func=lambda k: spec_kinds.get(k).label)
    return spec_kinds.get(chosen or ids[0])


# ---------------------------------------------------------------- galleries (a kind's `gallery`)


@dataclass(frozen=True)
class Gallery:
    """How stored items of one kind are shown."""

    # (stored item's path, caption) -> draws one item in a gallery cell.
    cell: Callable[[Path, str], None]
    # (stored items' paths, captions, width in px) -> draws them side by side.
    row: Callable[[list[Path], list[str], int], None]
    # (a handed-in item's bytes, its name, width in px) -> draws it beside its prediction.
    handed: Callable[[bytes, str, int], None]
    # (stored item's path, caption) -> draws it large in a dialog; None: no "Enlarge" button.
    large: Callable[[Path, str], None] | None = None
    # (stored items' paths, captions, width in px) -> side by side with more detail (mistakes); None: as `row`.
    detailed_row: Callable[[list[Path], list[str], int], None] | None = None


GALLERIES: dict[str, Gallery] = {
    "thumbnail": Gallery(
        cell=lambda path, caption: st.image(images.thumbnail(path), caption=caption, width="stretch"),
        row=lambda paths, captions, width: st.image([str(p) for p in paths], width=width, caption=captions),
        handed=lambda data, name, width: st.image(data, caption=name, width=width),
        large=lambda path, caption: st.image(str(path), caption=caption, width="stretch"),
    ),
}


def _sound_cell(path: Path, caption: str) -> None:
    st.audio(path.read_bytes(), format="audio/wav")
    st.caption(caption)


def _sound_large(path: Path, caption: str) -> None:
    data = path.read_bytes()
    st.audio(data, format="audio/wav")
    try:
        st.image(sounds.spectrogram_picture(data), caption=f"{caption}: spectrogram (time across, pitch upwards)",
                 width="stretch", clamp=True)
    except TransferLabError as exc:
        st.caption(str(exc))


def _sound_row(paths: list[Path], captions: list[str], width: int) -> None:
    for column, path, caption in zip(st.columns(max(1, len(paths))), paths, captions):
        with column:
            _sound_cell(path, caption)


def _sound_handed(data: bytes, name: str, width: int) -> None:
    st.audio(data)
    st.caption(name)


def _sound_detailed_row(paths: list[Path], captions: list[str], width: int) -> None:
    """Clips that play, each above its spectrogram (the Predictions page's mistakes)."""
    for column, path, caption in zip(st.columns(max(1, len(paths))), paths, captions):
        with column:
            _sound_large(path, caption)


GALLERIES["player"] = Gallery(cell=_sound_cell, row=_sound_row, handed=_sound_handed, large=_sound_large,
                              detailed_row=_sound_detailed_row)

SNIPPET_CHARS = 160  # characters of a text shown in a gallery cell


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """A text's beginning, cut at a word with an ellipsis when it is longer than `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "(this text cannot be read)"


def _text_cell(path: Path, caption: str) -> None:
    with st.container(border=True):
        st.text(snippet(_read_text(path)))
        st.caption(caption)


TEXTS_SIDE_BY_SIDE = 3  # more texts than this are listed in a table, one a row


def _text_row(paths: list[Path], captions: list[str], width: int) -> None:
    if len(paths) > TEXTS_SIDE_BY_SIDE:
        st.dataframe(pd.DataFrame({"text": [snippet(_read_text(p), 400) for p in paths], "about": captions}),
                     hide_index=True, width="stretch")
        return
    for column, path, caption in zip(st.columns(max(1, len(paths))), paths, captions):
        with column:
            _text_cell(path, caption)


def _text_handed(data: bytes, name: str, width: int) -> None:
    text = snippet(data.decode("utf-8", errors="replace"), 400)
    with st.container(border=True):
        st.text(text)
        if name != snippet(text, 60):  # a file's name; a typed text is not named twice
            st.caption(name)


def _text_large(path: Path, caption: str) -> None:
    st.text(_read_text(path))
    st.caption(caption)


GALLERIES["snippet"] = Gallery(cell=_text_cell, row=_text_row, handed=_text_handed, large=_text_large)


def _names_only(kind: spec_kinds.Kind) -> Gallery:
    """A gallery for a kind whose way of showing items is not here yet: file names, in words."""
    return Gallery(
        cell=lambda path, caption: st.caption(f"{kind.item}: {caption}"),
        row=lambda paths, captions, width: st.caption(" · ".join(captions)),
        handed=lambda data, name, width: st.caption(f"{kind.item}: {name}"),
    )


def gallery(kind: spec_kinds.Kind) -> Gallery:
    """How this kind's items are shown."""
    return GALLERIES.get(kind.gallery) or _names_only(kind)


def show_stored(kind: spec_kinds.Kind, root: Path | None, files: list[str], captions: list[str], missing: str,
                width: int = 120, detailed: bool = False) -> None:
    """Stored items of a dataset side by side (`detailed`: with more detail where the kind has it, e.g. a
    clip's spectrogram), or the sentence `missing` when the dataset is gone."""
    if root is None:
        st.caption(missing)
        return
    shown = [(root / f, c) for f, c in zip(files, captions) if (root / f).is_file()]
    if shown:
        view = gallery(kind)
        draw = (view.detailed_row if detailed else None) or view.row
        draw([p for p, _ in shown], [c for _, c in shown], width)


# ---------------------------------------------------------------- handing one item in (a kind's `hand_in`)


def _file_hand_in(kind: spec_kinds.Kind) -> list[HandedIn]:
    files = st.file_uploader(f"{kind.label} to classify", type=upload_types(kind), accept_multiple_files=True,
                             key="pred.upload", help=f"Any {kind.items}; they are only used for this prediction.")
    return [(f.file_id, f.name, f.getvalue()) for f in files or []]


def _camera_hand_in(kind: spec_kinds.Kind) -> list[HandedIn]:
    if not st.toggle("Take a photo with the camera", key="pred.use_camera",
                     help="Your browser asks for permission first; the photo is only used for this prediction."):
        return []
    photo = st.camera_input("Photo", key="pred.camera",
                            help="Take a picture to classify; it is only used for this prediction.")
    return [] if photo is None else [(photo.file_id, "camera photo", photo.getvalue())]


def _microphone_hand_in(kind: spec_kinds.Kind) -> list[HandedIn]:
    clip = st.audio_input("Record a clip", key="pred.microphone", sample_rate=16000,
                          help="Your browser asks for permission first; the recording is only used for this prediction.")
    return [] if clip is None else [(clip.file_id, "microphone recording", clip.getvalue())]


# A way of handing items in: (the kind) -> the items handed in, drawn with widgets of keys "pred.*".
HAND_INS: dict[str, Callable[[spec_kinds.Kind], list[HandedIn]]] = {
    "file": _file_hand_in,
    "camera": _camera_hand_in,
    "microphone": _microphone_hand_in,
}


@dataclass(frozen=True)
class Recorded:
    """A clip recorded on the page, handed to the importer as an upload is (a name and `getvalue`)."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


def recordings_ui(kind: spec_kinds.Kind, slot: int, label: str, window: float | None = None) -> list[Recorded]:
    """For a kind handed in by microphone: record clips into one class of the class builder, one after another
    (Teachable Machine style); the clips kept so far (`window`: the seconds a long recording is cut into). Other
    kinds: none."""
    if "microphone" not in kind.hand_in:
        return []
    window = sounds.WINDOW_SECONDS if window is None else window
    kept: dict[str, Recorded] = st.session_state.setdefault(f"data.recorded.{slot}", {})
    # A label without the class name: renaming the class would renew the recorder, which hands its last clip in again.
    clip = st.audio_input("Record a clip into this class", key=f"data.record.{slot}", sample_rate=16000,
                          help="Record one example, then the next: each recording is kept in this class. A recording "
                               f"longer than {sounds.LONG_WINDOWS * window:g} seconds is cut into {window:g}-second "
                               f"clips (the window length above), and a class needs at least "
                               f"{health.MIN_IMAGES_TO_TRAIN} clips to train: three recordings of "
                               f"{4 * window:g} seconds are enough for a first try. Your browser asks for permission "
                               "first.")
    if clip is not None and clip.file_id not in kept:
        kept[clip.file_id] = Recorded(f"recording-{len(kept) + 1:03d}.wav", clip.getvalue())
    if kept:
        st.caption(f"{len(kept)} recording(s) kept in this class. Longer ones become several {window:g}-second clips; "
                   f"a class needs {health.MIN_IMAGES_TO_TRAIN} clips.")
    return list(kept.values())


def typed_texts_ui(kind: spec_kinds.Kind, slot: int, label: str) -> list[Recorded]:
    """For a kind handed in as typed text: texts typed or pasted into one class of the class builder, one a line,
    each kept as a .txt file for the importer. Other kinds: none."""
    if "text" not in kind.hand_in:
        return []
    typed = st.text_area(f"Texts of '{label}', one per line", key=f"data.typed.{slot}", height=140,
                         help="Type or paste this class's examples, one text a line (a line break ends a text). "
                              "Texts in .txt files can be added with the uploader below as well.")
    lines = [line.strip() for line in (typed or "").splitlines() if line.strip()]
    return [Recorded(f"typed-{i:03d}.txt", line.encode("utf-8")) for i, line in enumerate(lines, 1)]


def _text_hand_in(kind: spec_kinds.Kind) -> list[HandedIn]:
    typed = st.text_area(f"A {kind.item} to classify", key="pred.text", height=100,
                         placeholder="Type or paste a text here", help="Type a sentence the way your data reads; "
                         "several texts: one per line. They are only used for this prediction.")
    lines = [line.strip() for line in (typed or "").splitlines() if line.strip()]
    return [(f"typed:{line}", snippet(line, 60), line.encode("utf-8")) for line in lines]


HAND_INS["text"] = _text_hand_in


def hand_in_ui(kind: spec_kinds.Kind) -> list[HandedIn]:
    """Every way this kind offers to hand items in, in its order; the items handed in."""
    handed: list[HandedIn] = []
    for way in kind.hand_in:
        if way in HAND_INS:
            handed += HAND_INS[way](kind)
    return handed


def all_items() -> str:
    """Every kind's items in one phrase, for sentences about data in general: "images", "images or sounds"."""
    words = [spec_kinds.get(k).items for k in spec_kinds.ids()]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def all_formats() -> str:
    """The file formats every kind reads, in one sentence's words: "JPEG, PNG, ... or TIFF images"."""
    return "; ".join(f"{spec_kinds.get(k).formats_words} {spec_kinds.get(k).items}" for k in spec_kinds.ids())


def sample_caption(name: str, description: str) -> str:
    """A built-in sample's description, led by its kind's label when the app reads more than one kind."""
    if len(spec_kinds.ids()) == 1:
        return description
    kind = next((k for k in data_kinds.DATA_KINDS.values() if name in k.samples), None)
    return f"{kind.spec.label}: {description}" if kind else description
