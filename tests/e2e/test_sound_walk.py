"""Issue 24's browser walk: sounds recorded with a fake microphone, class by class, trained and tried.

Chromium's fake media flags replace the microphone with a WAV file the test writes: a low tone while
the first class is recorded, a high tone (the same file, rewritten) for the second. Three recordings of about
four seconds per class on the Data page's class builder (each cut into one-second clips, so a class has the
ten clips training needs), the quick sound preset (a small CNN on log-mel, from scratch, the
server caps it at 2 epochs), then the Predictions page's "Try it" classifies a recording.
"""

from __future__ import annotations

import math
import re
import struct
import wave
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Walk, playwright_api

LOW_HZ, HIGH_HZ = 440, 2000
CLASSES = ("hum", "whistle")


def write_tone(path: Path, hz: float, seconds: float = 4.0, rate: int = 16_000) -> None:
    """A mono 16-bit WAV of a sine tone: what the fake microphone plays (looped)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(12_000 * math.sin(2 * math.pi * hz * i / rate)))
                                 for i in range(int(seconds * rate))))


def dominant_hz(path: Path) -> float:
    """The loudest frequency of a stored clip (numpy's FFT), to tell the two classes' recordings apart."""
    import numpy as np
    import soundfile

    samples, rate = soundfile.read(str(path), always_2d=True)
    spectrum = np.abs(np.fft.rfft(samples.mean(axis=1)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(spectrum.argmax())])


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory):
    """(Chromium launched with a fake microphone playing `wav`, wav)."""
    wav = tmp_path_factory.mktemp("microphone") / "microphone.wav"
    write_tone(wav, LOW_HZ)
    flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}"]
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + flags)
        yield b, wav
        b.close()


def record(walk: Walk, recorder, kept: int, number: int, seconds: int = 4) -> None:
    """Press the recorder's button, let it run past `seconds` on its own clock, stop; the page keeps it."""
    recorder.get_by_role("button", name="Record", exact=True).click()
    recorder.get_by_test_id("stAudioInputWaveformTimeCode").filter(has_text=f"00:0{seconds}").wait_for(timeout=30_000)
    recorder.get_by_role("button", name="Stop recording", exact=True).click()
    walk.settle()
    # Class `number`'s caption: the classes before it hold 3 clips each, so at 3 it is the number-th such caption.
    nth = number - 1 if kept == 3 else 0
    walk.page.get_by_text(f"{kept} recording(s) kept in this class.").nth(nth).wait_for(timeout=60_000)


def test_sound_walk_with_a_fake_microphone(server, fake_microphone):
    url, ws = server
    browser, wav = fake_microphone
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["microphone"])
    page = context.new_page()
    walk = Walk(page, "sound-walk")
    page.goto(url + "/data")
    walk.settle()

    # 1. The class builder, for sounds: three recordings per class, the second class with a higher tone.
    walk.click(page.get_by_role("tab", name="Build classes here"))
    walk.click(page.get_by_test_id("stButtonGroup").first.get_by_text("Sounds", exact=True))
    for number, (name, hz) in enumerate(zip(CLASSES, (LOW_HZ, HIGH_HZ)), start=1):
        write_tone(wav, hz)
        recorder = page.get_by_test_id("stAudioInput").nth(number - 1)
        for kept in (1, 2, 3):
            record(walk, recorder, kept, number)
        page.get_by_label("Class name", exact=True).nth(number - 1).fill(name)
        page.get_by_label("Class name", exact=True).nth(number - 1).press("Enter")
        # The rename's rerun has finished once the uploader carries the new name (a click before then can be lost).
        page.get_by_text(f"Recordings of '{name}'", exact=True).wait_for(timeout=60_000)
        walk.settle()
    walk.shot("recorded")
    walk.click(page.get_by_role("button", name="Create the dataset"))
    walk.shot("created")
    page.get_by_text(re.compile(r"Imported 'my classes': \d+ clips in 2 classes\.")).first.wait_for(timeout=180_000)
    walk.shot("dataset")

    # The stored clips are the recordings cut into one-second clips, 4 or 5 per recording, each class at its tone.
    folder = next(p for p in (ws / "datasets").iterdir() if (p / CLASSES[0]).is_dir())
    for name, hz in zip(CLASSES, (LOW_HZ, HIGH_HZ)):
        clips = sorted((folder / name).glob("*.wav"))
        assert 12 <= len(clips) <= 15, (name, clips)
        assert all(abs(dominant_hz(c) - hz) < 50 for c in clips), (name, [dominant_hz(c) for c in clips])

    # 2. Train with the sound kind's default preset (the server caps it at 2 epochs).
    walk.nav("Train")
    # The Train page is drawn (the sound kind's quick preset named) before its button is pressed.
    page.get_by_text("Small CNN on log-mel").first.wait_for(timeout=60_000)
    walk.settle()
    walk.click(page.get_by_role("button", name="Start training"))
    page.get_by_role("heading", name=re.compile(r"^Run \d{8}-\d{6}-[0-9a-f]{12}$")).wait_for(timeout=60_000)
    walk.shot("training")
    page.get_by_text("Training finished").wait_for(timeout=150_000)
    walk.shot("trained")

    # 3. Predictions: "Try it" with the microphone (the low tone again) gives a class and how sure it is.
    walk.nav("Predictions")
    walk.click(page.get_by_role("tab", name="Try it"))
    trying = page.get_by_role("tabpanel", name="Try it")
    write_tone(wav, LOW_HZ)
    recorder = trying.get_by_test_id("stAudioInput").first
    recorder.get_by_role("button", name="Record", exact=True).click()
    recorder.get_by_test_id("stAudioInputWaveformTimeCode").filter(has_text="00:01").wait_for(timeout=30_000)
    recorder.get_by_role("button", name="Stop recording", exact=True).click()
    walk.settle()
    guess = trying.get_by_text(re.compile(rf"^({'|'.join(CLASSES)}) \(\d+% sure\)")).first
    guess.wait_for(timeout=120_000)
    walk.shot("try-it")
    assert not page.get_by_test_id("stException").count()
