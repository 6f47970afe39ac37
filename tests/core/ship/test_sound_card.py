"""A sound run's model card says what the model takes in (a 16 kHz waveform, the log-mel front end inside), and
its code export says in one sentence that standalone training scripts are for images only."""

from __future__ import annotations

import json

import pytest

from core.ship import card, codegen
from core.spec.config import RunConfig
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


def test_a_sound_runs_training_script_says_it_is_for_images_only(sound_run):
    run_dir, cfg = sound_run
    script = codegen.training_script(cfg, "data", classes=["buzz", "chirp"], ws=run_dir.parent.parent)
    with pytest.raises(SystemExit) as stopped:
        exec(compile(script, "train.py", "exec"), {"__name__": "__main__"})
    assert "for images only" in str(stopped.value) and "python -m core train" in str(stopped.value)
    assert "16 kHz" in card.code_readme(run_dir, "data", "source")
