"""Sounds in: decoding once (mono, 16 kHz), the guards' sentences, windows of long recordings, the health facts,
the `sounds` sample and the importer recognising clips by their type and content."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.data import kinds, samples, sounds, tfdata
from core.data.importer import import_path
from core.data.limits import ImportLimits
from core.errors import DatasetError

RATE = sounds.SAMPLE_RATE


def tone(seconds: float = 1.0, freq: float = 440.0, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav(x: np.ndarray, rate: int = RATE, fmt: str = "WAV", subtype: str | None = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def header_only_wav(seconds: float, rate: int = 8000) -> bytes:
    """A WAV header promising `seconds` of 8-bit mono sound, followed by a little of it."""
    n = int(seconds * rate)
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate, 1, 8)
    return b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + fmt + b"data" + struct.pack("<I", n) + b"\x80" * 4000


def test_stereo_44k_becomes_mono_16k_with_its_facts():
    stereo = np.stack([tone(1.0, rate=44100), tone(1.0, rate=44100, amp=0.1)], axis=1)
    x, facts = sounds.decode(wav(stereo, 44100))
    assert x.dtype == np.float32 and abs(len(x) - RATE) <= 1
    assert facts["sample_rate"] == 44100 and facts["channels"] == 2 and facts["seconds"] == pytest.approx(1.0, abs=0.01)
    assert np.max(np.abs(x)) == pytest.approx(0.2, abs=0.02)  # the two channels averaged


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_flac_ogg_and_mp3_are_read(fmt, subtype):
    x, facts = sounds.decode(wav(tone(1.0, rate=22050), 22050, fmt, subtype))
    assert facts["sample_rate"] == 22050 and abs(len(x) - RATE) < RATE * 0.1
    assert sounds.sniff("clip", wav(tone(0.1), RATE, fmt, subtype)[:64])


@pytest.mark.parametrize("data,words", [
    (wav(tone(1.0))[:2000], "cut short"),
    (b"this is a shopping list, not a recording\n" * 20, "not a readable sound file"),
    (wav(np.zeros(0, np.float32)), "0 seconds"),
    (header_only_wav(2 * 3600), "2 h 0 min"),
    (wav(np.zeros((RATE, 8), np.float32)), "8 channels"),
])
def test_bad_clips_get_one_sentence(data, words):
    with pytest.raises(DatasetError) as err:
        sounds.normalise("bad.wav", data, ImportLimits())
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_long_recording_is_cut_into_windows_without_its_silent_ones():
    x = np.concatenate([tone(2.0), np.zeros(2 * RATE, np.float32), tone(1.2, 880.0)])
    pieces = sounds.normalise("birdsong.wav", wav(x), ImportLimits())
    # Windows at 0 and 1 s (the tone), 2 and 3 s silent (left out), 4 s (the second tone); the last 0.2 s is
    # under half a window.
    assert [facts["window_start"] for _, _, facts in pieces] == [0.0, 1.0, 4.0]
    for suffix, data, _ in pieces:
        stored, rate = sf.read(io.BytesIO(data))
        assert suffix == ".wav" and rate == RATE and len(stored) == RATE


def test_silent_and_clipped_clips_and_near_duplicates_are_reported():
    quiet = wav(np.zeros(RATE, np.float32) + 1e-5)
    loud = wav(np.clip(tone(1.0, amp=3.0), -1, 1))
    a = sounds.normalise("a.wav", wav(tone(1.0, 600.0)), ImportLimits())[0][2]
    b = sounds.normalise("b.wav", wav(tone(1.0, 600.0) * 0.5 + 1e-4), ImportLimits())[0][2]
    c = sounds.normalise("c.wav", wav(tone(1.0, 3000.0)), ImportLimits())[0][2]
    facts = [sounds.normalise("q.wav", quiet, ImportLimits())[0][2], sounds.normalise("l.wav", loud, ImportLimits())[0][2],
             a, b, c]
    report = sounds.health_facts(sounds.record(facts))["sounds"]
    assert report["silent"] == 1 and report["clipped"] == 1
    assert report["near_duplicates"] == [["a.wav", "b.wav"]]
    assert report["sample_rates"] == {"16000": 5}


def test_import_recognises_clips_and_sets_bad_ones_aside(tmp_path, ws):
    src = tmp_path / "src"
    for label, freq in (("low", 300.0), ("high", 3000.0)):
        (src / label).mkdir(parents=True)
        for i in range(6):
            (src / label / f"{label}{i}.wav").write_bytes(wav(tone(1.0, freq * (1 + i / 20))))
    (src / "low" / "text.wav").write_bytes(b"not a recording at all" * 10)
    (src / "high" / "eight.wav").write_bytes(wav(np.zeros((RATE, 8), np.float32)))
    (src / "high" / "empty.wav").write_bytes(wav(np.zeros(0, np.float32)))
    (src / "high" / "empty.flac").write_bytes(wav(np.zeros(0, np.float32), fmt="FLAC"))
    info = import_path(src, ws, name="beeps")
    assert info["kind"] == "audio" and info["counts"] == {"high": 6, "low": 6}
    reasons = {s["file"].split("/")[-1]: s["reason"] for s in info["skipped"]}
    assert set(reasons) == {"text.wav", "eight.wav", "empty.wav", "empty.flac"}
    assert "8 channels" in reasons["eight.wav"] and "0 seconds" in reasons["empty.wav"]
    assert "not a WAV" in reasons["text.wav"] and "empty" in reasons["empty.flac"]
    assert info["report"]["sounds"]["durations"]["median"] == pytest.approx(1.0)


def test_kind_is_sniffed_from_content_when_names_do_not_say():
    files = [(f"clip{i}.bin", lambda: wav(tone(0.2))) for i in range(3)]
    assert kinds.detect(files) == "audio"


def test_sounds_sample_is_made_offline_the_same_each_time(tmp_path):
    a = sounds.generate_sounds(tmp_path / "a", per_class=2, seed=3)
    b = sounds.generate_sounds(tmp_path / "b", per_class=2, seed=3)
    names = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(names) == 2 * len(sounds.SOUND_CLASSES)
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert "sounds" in samples.SAMPLES


def test_loader_gives_one_second_for_any_stored_length(tmp_path):
    import tensorflow as tf

    load = kinds.get("audio").load(96)
    for seconds in (0.3, 1.0, 1.4):
        path = Path(tmp_path) / f"{seconds}.wav"
        path.write_bytes(wav(tone(seconds)))
        assert tuple(load(tf.constant(str(path))).shape) == (sounds.CLIP_SAMPLES,)


# ---------------------------------------------------------------- windows of a chosen length


def _two_classes(src: Path, seconds: float) -> Path:
    """Two class folders of two recordings each, `seconds` long, of a steady tone."""
    for label, freq in (("low", 300.0), ("high", 3000.0)):
        (src / label).mkdir(parents=True)
        for i in range(2):
            (src / label / f"{label}{i}.wav").write_bytes(wav(tone(seconds, freq * (1 + i / 20))))
    return src


def test_import_with_a_chosen_window_stores_clips_of_that_length_and_the_manifest_says_so(tmp_path, ws):
    info = import_path(_two_classes(tmp_path / "src", 6.0), ws, name="long", window=2.0)
    assert info["window_seconds"] == 2.0 and info["report"]["sounds"]["window_seconds"] == 2.0
    assert info["counts"] == {"high": 6, "low": 6}  # each 6-second recording: three 2-second pieces
    root = ws / "datasets" / info["id"]
    for rel in info["images"]["low"]:
        stored, rate = sf.read(root / rel)
        assert rate == RATE and len(stored) == 2 * RATE
    starts = sorted({f["window_start"] for f in info["clip_facts"]})
    assert starts == [0.0, 2.0, 4.0]
    assert info["report"]["sounds"]["windows_from_long_recordings"] == 12
    assert info["report"]["sounds"]["durations"]["median"] == pytest.approx(6.0)  # each recording once


def test_the_default_window_is_one_second_and_recorded(tmp_path, ws):
    info = import_path(_two_classes(tmp_path / "src", 3.0), ws, name="default")
    assert info["window_seconds"] == sounds.WINDOW_SECONDS == 1.0 and info["counts"] == {"high": 6, "low": 6}


@pytest.mark.parametrize("seconds", [0.2, 11.0, float("nan")])
def test_a_window_length_out_of_range_gets_one_sentence_and_imports_nothing(tmp_path, ws, seconds):
    with pytest.raises(DatasetError) as err:
        import_path(_two_classes(tmp_path / "src", 3.0), ws, name="bad", window=seconds)
    assert "between 0.5 and 10 seconds" in str(err.value) and "\n" not in str(err.value)
    assert not list((ws / "datasets").glob("bad-*"))


def test_images_ignore_a_chosen_window(tmp_path, ws):
    from PIL import Image

    for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8 + i, 8), colour).save(tmp_path / "pics" / label / f"{i}.png")
    info = import_path(tmp_path / "pics", ws, name="pics", window=3.0)
    assert info["counts"] == {"blue": 2, "red": 2} and "window_seconds" not in info


def test_training_takes_random_seconds_of_a_longer_clip_and_evaluation_its_middle(tmp_path):
    import tensorflow as tf

    ramp = np.linspace(-0.9, 0.9, 3 * RATE).astype(np.float32)  # every second of it is different
    path = tmp_path / "ramp.wav"
    path.write_bytes(wav(ramp))
    middle = kinds.get("audio").load(96)(tf.constant(str(path))).numpy()
    stored = sf.read(path, dtype="float32")[0]
    assert np.allclose(middle, stored[RATE:2 * RATE])
    crop, views = kinds.get("audio").load_random({"window_seconds": 3.0}, 96)
    assert views == 3  # an epoch takes as many random seconds of a 3-second window as it has seconds
    assert kinds.get("audio").load_random({}, 96)[1] == 1  # one-second windows (the default): one
    starts = set()
    tf.random.set_seed(0)
    for _ in range(20):
        x = crop(tf.constant(str(path))).numpy()
        assert x.shape == (sounds.CLIP_SAMPLES,)
        start = int(np.argmin(np.abs(stored - x[0])))
        assert np.allclose(x, stored[start:start + RATE])  # one whole second of the clip
        starts.add(start)
    assert len(starts) > 10 and min(starts) < RATE // 2 and max(starts) > 3 * RATE // 2  # all over the clip
    ds = tfdata.pipeline(tmp_path, [("ramp.wav", 0)] * 4, 96, 4, True, 0, kind="audio", crop=3)
    batches = list(ds)
    assert len(batches) == int(ds.cardinality()) == tfdata.batches(4, 4, crop=3) == 3  # 4 clips x 3 seconds
    assert all(tuple(x.shape) == (4, sounds.CLIP_SAMPLES) and y.numpy().tolist() == [0] * 4 for x, y in batches)


def test_a_handed_in_clip_gives_its_heard_one_second_windows(tmp_path):
    x = np.concatenate([tone(1.0, 300.0), np.zeros(RATE, np.float32), tone(1.0, 900.0)])
    pieces = sounds.clip_windows(wav(x))
    assert pieces.shape == (2, sounds.CLIP_SAMPLES)  # the silent second is left out
    assert sounds.clip_windows(wav(tone(1.2))).shape == (1, sounds.CLIP_SAMPLES)  # a short clip: one input
    assert sounds.clip_windows(wav(np.zeros(3 * RATE, np.float32))).shape == (3, sounds.CLIP_SAMPLES)  # all silent


def test_the_command_line_imports_with_a_window_and_says_so(tmp_path, ws, capsys):
    import json

    from core.cli import main

    assert main(["dataset", "import", str(_two_classes(tmp_path / "src", 6.0)), "--window", "2", "--json"]) == 0
    brief = json.loads(capsys.readouterr().out)
    assert brief["window_seconds"] == 2.0 and brief["counts"] == {"high": 6, "low": 6}
    assert main(["dataset", "import", str(tmp_path / "src"), "--window", "20"]) != 0
    assert "between 0.5 and 10 seconds" in capsys.readouterr().err


def test_an_epoch_takes_as_many_random_seconds_as_the_window_has(tmp_path, ws):
    info = import_path(_two_classes(tmp_path / "src", 3.0), ws, name="three", window=3.0)
    root = ws / "datasets" / info["id"]
    assert tfdata.crop_views(root, 96) == 3 and info["counts"] == {"high": 2, "low": 2}  # kept whole: 3 s each
    assert tfdata.crop_views(ws / "datasets" / import_path(_two_classes(tmp_path / "one", 1.0), ws)["id"], 96) == 1
