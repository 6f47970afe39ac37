"""A sound run's model card says what the model takes in (a 16 kHz waveform, the log-mel front end inside), and
its generated training script trains on WAV clips with the same log-mel front end (or says in one sentence why it
cannot, for a method it does not write)."""

from __future__ import annotations

import json

import pytest

from core.ship import card, codegen
from core.spec.config import AugmentConfig, RunConfig
from core.store import runs


@pytest.fixture
def sound_run(ws):
    cfg = RunConfig(dataset_id="sounds-0123abcd", backbone="logmel_cnn", weights="none", strategy="from_scratch",
                    image_size=64).validate()
    run_dir = runs.create_run(cfg, ws)
    (run_dir / "split.json").write_text(json.dumps({"classes": ["buzz", "chirp"], "train": [["buzz/0.wav", 0]],
                                                    "val": [["chirp/0.wav", 1]], "test": []}))
    return run_dir, cfg


def test_a_sound_runs_card_describes_its_waveform_input_and_front_end(sound_run):
    run_dir, _ = sound_run
    text = card.model_card(run_dir)
    assert "clip classifier" in text and "Classifies a clip into one of 2 classes" in text
    assert "16 kHz float waveform" in text and "log-mel spectrogram" in text and "64×64 picture" in text
    assert "RGB images" not in text


def test_a_sound_runs_training_script_trains_on_clips_with_the_same_front_end(ws, tmp_path):
    import io
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    from core.data.importer import import_path
    from core.store import datasets

    rate, rng = 16_000, np.random.default_rng(0)
    for label, hz in (("low", 300.0), ("high", 2500.0)):
        (tmp_path / "clips" / label).mkdir(parents=True)
        for i in range(10):
            wave = 0.4 * np.sin(2 * np.pi * hz * (1 + i / 30) * np.arange(rate) / rate) + rng.normal(0, 0.01, rate)
            buf = io.BytesIO()
            sf.write(buf, wave.astype(np.float32), rate, format="WAV", subtype="PCM_16")
            (tmp_path / "clips" / label / f"{i}.wav").write_bytes(buf.getvalue())
    info = import_path(tmp_path / "clips", ws, name="tones")
    cfg = RunConfig(dataset_id=info["id"], backbone="logmel_cnn", weights="none", strategy="from_scratch",
                    image_size=32, epochs=2, batch_size=4, patience=0,
                    augment=AugmentConfig(flip=False, rotate=False, noise=True, spec_mask=True)).validate()
    data = datasets.dataset_path(info["id"], ws)
    script = codegen.training_script(cfg, str(data), ws=ws)
    for text in ("IMAGE_SUFFIXES = ('.wav',)", "CLIP_SAMPLES = 16000", "def log_mel(", "class SpectrogramPicture(",
                 "SoundAugment(noise=True, gain=False, shift=False, spec_mask=True", 'keras.Input((CLIP_SAMPLES,), name="waveform")', "tf.audio.decode_wav("):
        assert text in script, text
    assert "from core" not in script and "import core" not in script
    (tmp_path / "train.py").write_text(script)
    proc = subprocess.run([sys.executable, str(tmp_path / "train.py"), str(data), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test accuracy" in proc.stdout and (tmp_path / "out" / "model.keras").is_file()
    assert "trains this run's model" in card.code_readme(runs.create_run(cfg, ws), str(data), "source")


def test_a_sound_run_the_script_cannot_train_says_why_in_a_sentence(sound_run):
    run_dir, cfg = sound_run
    teacher = runs.create_run(cfg, run_dir.parent.parent)
    distilled = cfg.with_changes(strategy="distill", source_run=teacher.name).validate()
    script = codegen.training_script(distilled, "data", classes=["buzz", "chirp"], ws=run_dir.parent.parent)
    with pytest.raises(SystemExit) as stopped:
        exec(compile(script, "train.py", "exec"), {"__name__": "__main__"})
    assert "plain strategy" in str(stopped.value) and "python -m core train" in str(stopped.value)
    assert "does not train this run" in card.code_readme(runs.create_run(distilled, run_dir.parent.parent), "d", "s")


def test_a_sound_script_reads_the_middle_second_of_a_longer_clip_as_the_app_does(ws, tmp_path):
    # A dataset imported with --window 3 stores 3-second clips; the app evaluates their middle second.
    import io

    import numpy as np
    import soundfile as sf

    from core.data import sounds as data_sounds

    rate = data_sounds.SAMPLE_RATE
    wave = np.concatenate([np.zeros(rate), 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate), np.zeros(rate)])
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    (tmp_path / "long.wav").write_bytes(buf.getvalue())
    cfg = RunConfig(dataset_id="d", backbone="logmel_cnn", weights="none", strategy="from_scratch", image_size=32,
                    epochs=1).validate()
    space: dict = {"__name__": "train_script"}
    exec(compile(codegen.training_script(cfg, "data", classes=["a", "b"], ws=ws), "train.py", "exec"), space)
    clips, _ = next(iter(space["make_dataset"](tmp_path, [("long.wav", 0)], False)))
    app = data_sounds.loader(32)(str(tmp_path / "long.wav")).numpy()  # what evaluation and Predictions read
    assert clips.shape == (1, rate) and np.abs(app).max() > 0.4  # the tone, not a silent second
    np.testing.assert_allclose(clips[0].numpy(), app, atol=1e-4)
