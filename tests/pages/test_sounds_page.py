"""The pages with sounds: the Data page plays clips (st.audio) and says the sound facts of the health report;
"Try it" on the Predictions page offers the microphone (st.audio_input) beside files."""

from core.data import sounds
from core.data.importer import import_path
from tests.pages.conftest import app_test, assert_clean


def _text(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning") for e in at.get(kind))


def test_the_data_page_plays_clips_and_says_their_facts(ws, tmp_path):
    info = import_path(sounds.generate_sounds(tmp_path / "sounds", per_class=10, seed=2), ws, name="sounds")
    at = app_test("data").run(timeout=60)
    assert_clean(at)
    assert at.session_state["dataset_id"] == info["id"]
    text = _text(at)
    assert "sample rates found: 16 kHz (40)" in text and "a model hears one second" in text
    assert at.get("audio")  # the gallery's clips play
    assert [t.label for t in at.tabs if t.label == "Augmentation preview"] == ["Augmentation preview"]


def test_the_augmentation_preview_lets_you_listen_to_and_see_an_augmented_clip(ws, tmp_path):
    import_path(sounds.generate_sounds(tmp_path / "sounds", per_class=4, seed=2), ws, name="sounds")
    at = app_test("data").run(timeout=60)
    switches = {c.key.removeprefix("data.augment."): c for c in at.checkbox if c.key.startswith("data.augment.")}
    assert set(switches) == {"noise", "gain", "shift", "spec_mask"}  # a sound's own changes only
    switches["noise"].check()
    at.toggle(key="data.preview").set_value(True).run(timeout=120)
    assert_clean(at)
    assert len(at.get("audio")) >= 3  # the clip as trained and two changed versions play (beside the gallery)
    captions = [c for img in at.image for c in img.captions]
    first = at.selectbox(key="data.preview_class").value
    assert [c for c in captions if c.startswith(f"{first}: ")] == [
        f"{first}: {name} (time across, pitch upwards)" for name in ("as trained", "changed 1", "changed 2")], captions
    assert at.session_state["model.augment.noise"] is True  # the Model page uses the same switch


def test_spectrogram_picture_is_a_small_grey_image(tmp_path):
    clip = next((sounds.generate_sounds(tmp_path / "s", per_class=1, seed=0) / "whistle").iterdir()).read_bytes()
    pic = sounds.spectrogram_picture(clip)
    assert pic.dtype.name == "uint8" and pic.shape[0] <= 64 and pic.shape[1] > 90 and pic.max() == 255


def test_the_class_builder_records_sounds_class_by_class(ws):
    at = app_test("data").run(timeout=60)
    at.segmented_control(key="data.builder_kind").set_value("audio").run(timeout=60)
    assert_clean(at)
    assert len(at.get("audio_input")) >= 2  # one microphone per class
    images = app_test("data").run(timeout=60)
    assert not images.get("audio_input")  # images are not recorded


def test_the_model_page_offers_a_sound_datasets_own_augmentations_with_help(ws, tmp_path):
    import_path(sounds.generate_sounds(tmp_path / "sounds", per_class=10, seed=2), ws, name="sounds")
    at = app_test("model").run(timeout=60)
    assert_clean(at)
    boxes = {c.key.removeprefix("model.augment."): c for c in at.checkbox if c.key.startswith("model.augment.")}
    assert set(boxes) == {"noise", "gain", "shift", "spec_mask"}  # no mirroring or rotating of a sound
    assert all(c.help for c in boxes.values())
    assert "noisier, louder, shifted in time" in _text(at)


def _long_wav(seconds: float, freq: float) -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * sounds.SAMPLE_RATE)) / sounds.SAMPLE_RATE
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sounds.SAMPLE_RATE, format="WAV")
    return buf.getvalue()


def test_the_class_builder_cuts_long_recordings_into_the_chosen_window(ws):
    from core.store import datasets

    at = app_test("data").run(timeout=60)
    at.segmented_control(key="data.builder_kind").set_value("audio").run(timeout=60)
    window = at.number_input(key="data.builder_window")
    assert window.value == 1.0 and "each piece is one example" in window.help
    window.set_value(2.0).run(timeout=60)
    for slot, freq in ((1, 300.0), (2, 3000.0)):
        at.file_uploader(key=f"data.class_files.{slot}").set_value(
            [(f"bird{slot}.wav", _long_wav(6.0, freq), "audio/wav")]).run(timeout=60)
    at.button(key="data.build").click().run(timeout=60)
    assert_clean(at)
    (info,) = datasets.list_datasets(ws)
    assert info["window_seconds"] == 2.0 and info["counts"] == {"Class 1": 3, "Class 2": 3}  # 6 s: three 2-s pieces
    assert "Window length: 2 s" in _text(at)  # the health report says it


def test_a_zip_or_folder_import_offers_the_window_length_too(ws):
    at = app_test("data").run(timeout=60)
    assert_clean(at)
    for key in ("data.upload_window", "data.folder_window"):
        assert at.number_input(key=key).value == sounds.WINDOW_SECONDS
