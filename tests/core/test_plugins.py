"""The two plug-in axes, proven from outside: a kind of data and a training method that exist only in this test.

The test registers a toy kind of data ("vectors": tiny text files of four numbers) with a backbone of its own,
and a toy training method (plain training, compiled with SGD, that reports the phases it trained) with a
strategy naming it. Each is one registry entry per axis plus the functions in this module; no project code
changes. The dataset is imported, trained, evaluated and predicted through the ordinary command line
(`python -m core dataset import`, `config`, `train`, `evaluate`, `predict`), in-process.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from core.cli import main
from core.data import kinds as data_kinds
from core.data.limits import ImportLimits
from core.engine import inputs, methods
from core.engine.plain import Plain
from core.errors import DatasetError
from core.spec import backbones, strategies
from core.spec import kinds as spec_kinds
from core.store import datasets, runs

LENGTH = 4  # numbers per vector file

# ---------------------------------------------------------------- the toy kind of data: one entry per floor


def _parse(data: bytes) -> np.ndarray:
    try:
        values = np.array([float(v) for v in data.decode("ascii").strip().split(",")], dtype=np.float32)
    except (UnicodeDecodeError, ValueError):
        raise DatasetError("not a list of numbers separated by commas") from None
    if values.shape != (LENGTH,):
        raise DatasetError(f"holds {values.size} numbers, not {LENGTH}")
    return values


def _normalise(name: str, data: bytes, limits: ImportLimits) -> list[data_kinds.Stored]:
    values = _parse(data)
    return [(".vec", ",".join(f"{v:.6g}" for v in values).encode(), {"norm": float(np.linalg.norm(values))})]


def _loader(size: int) -> Any:
    import tensorflow as tf

    def read(path: Any) -> Any:
        text = tf.strings.strip(tf.io.read_file(path))
        return tf.reshape(tf.strings.to_number(tf.strings.split(text, ","), tf.float32), [LENGTH])

    return read


VECTOR = spec_kinds.Kind(
    id="vector", label="Vectors", item="vector", items="vectors", extensions=(".vec",), hand_in=("file",),
    explain="none", gallery="snippet", default_backbone="toy_dense", formats="comma-separated numbers",
)
VECTOR_DATA = data_kinds.DataKind(
    id="vector", sniff=lambda name, head: False, normalise=_normalise,
    record=lambda facts: {"vector_norms": [f["norm"] for f in facts]},
    health=lambda info: {"mean_norm": float(np.mean(info["vector_norms"]))}, samples=(), load=_loader,
)
VECTOR_INPUT = inputs.InputKind(
    id="vector", signature=lambda size: ((LENGTH,), "float32", "vector"), augmentation=lambda config: None,
    decode=lambda data, size, limits: _parse(data),
)


def toy_network(input_shape: tuple[int, ...], include_top: bool = False, weights: None = None) -> Any:
    """The toy kind's backbone: one dense layer, built like a Keras application (networks.make_network)."""
    import tf_keras as keras

    raw = keras.Input(input_shape)
    return keras.Model(raw, keras.layers.Dense(8, activation="relu", name="toy_features")(raw), name="toy_dense")


TOY_BACKBONE = backbones.BackboneSpec(
    id="toy_dense", label="Toy dense layer", family="toy", constructor=(__name__, "toy_network"),
    weights_options=("none",), default_size=32, kind="vector",
)

# ---------------------------------------------------------------- the toy training method: one entry + one class


class SgdReport(Plain):
    """Plain training, compiled with SGD whatever the config's optimizer, reporting the phases it trained."""

    id = "sgd_report"

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.optimizers: list[str] = []

    def open(self, run: Any, phase: strategies.Phase) -> None:
        self.opened.append(phase.name)
        super().open(run, phase)

    def compile(self, run: Any, trainer: Any, rate: Any) -> None:
        import tf_keras as keras

        trainer.compile(optimizer=keras.optimizers.SGD(rate, momentum=0.9), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
        self.optimizers.append(type(trainer.optimizer).__name__)

    def finish(self, run_dir: Any, config: Any, train: Any) -> dict[str, Any]:
        return {"phases_trained": list(self.opened)}


TOY_STRATEGY = strategies.Strategy(
    id="toy_two_step", label="Toy two steps", sentence="Trains the head, then everything, with SGD.",
    use_when="never: it exists for a test", forced_weights="none",
    phases=lambda c: [strategies.Phase("head", c.epochs, c.learning_rate, "none"),
                      strategies.Phase("fine_tune", c.fine_tune_epochs, c.fine_tune_learning_rate, "all")],
    method="sgd_report", settings=("fine_tune_epochs", "fine_tune_learning_rate"),
)


@pytest.fixture
def plugged(monkeypatch) -> SgdReport:
    """Both plug-ins registered for this test only (the registries are restored afterwards)."""
    monkeypatch.setitem(spec_kinds.KINDS, "vector", VECTOR)
    monkeypatch.setitem(data_kinds.DATA_KINDS, "vector", VECTOR_DATA)
    monkeypatch.setitem(inputs.INPUT_KINDS, "vector", VECTOR_INPUT)
    monkeypatch.setitem(backbones.BACKBONES, "toy_dense", TOY_BACKBONE)
    method = SgdReport()
    monkeypatch.setitem(methods.METHODS, method.id, method)
    monkeypatch.setitem(strategies.STRATEGIES, TOY_STRATEGY.id, TOY_STRATEGY)
    return method


def _vector_source(root: Any, per_class: int = 16) -> Any:
    """Two classes of vectors far apart ("low" around -1, "high" around +1), and one file that is no vector."""
    rng = np.random.default_rng(0)
    for label, centre in (("low", -1.0), ("high", 1.0)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            values = centre + 0.2 * rng.standard_normal(LENGTH)
            (root / label / f"{i:02d}.vec").write_text(",".join(f"{v:.4f}" for v in values))
    (root / "low" / "broken.vec").write_text("1,2,three")
    return root


def _cli(capsys, *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv and out.strip() else out), err


def test_a_toy_kind_and_a_toy_method_train_through_the_ordinary_path(ws, tmp_path, capsys, plugged):
    source = _vector_source(tmp_path / "vectors")
    code, brief, err = _cli(capsys, "dataset", "import", str(source), "--json")
    assert code == 0, err
    info = datasets.load_dataset(brief["id"], ws)
    assert info["kind"] == "vector" and info["classes"] == ["high", "low"]  # the kind read from the extension
    assert info["counts"] == {"high": 16, "low": 16}
    assert info["skipped"] == [{"file": "low/broken.vec", "reason": "not a list of numbers separated by commas"}]
    assert info["report"]["mean_norm"] > 1.0  # the kind's own health facts

    code, config, err = _cli(capsys, "config", "--dataset", info["id"], "--backbone", "toy_dense",
                             "--strategy", "toy_two_step", "--epochs", "3", "--fine-tune-epochs", "2",
                             "--learning-rate", "0.05", "--fine-tune-lr", "0.01", "--batch-size", "8",
                             "--image-size", "32", "--no-augment", "--json")
    assert code == 0, err
    assert config["backbone"] == "toy_dense" and config["weights"] == "none"  # the strategy forces its weights
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))

    code, result, err = _cli(capsys, "train", str(path), "--json")
    assert code == 0, err
    assert result["state"] == "done"
    assert plugged.opened == ["head", "fine_tune"] and plugged.optimizers == ["SGD", "SGD"]
    assert result["phases_trained"] == ["head", "fine_tune"]  # the method's finish() is in the result
    assert result["test_accuracy"] >= 0.8  # two clouds four standard deviations apart
    run_dir = runs.run_path(result["id"], ws)
    assert [e["phase"] for e in runs.read_events(run_dir) if e.get("type") == "phase_start"] == ["head", "fine_tune"]

    code, report, err = _cli(capsys, "evaluate", result["id"], "--json")
    assert code == 0, err
    assert report["accuracy"] == result["test_accuracy"]

    handed = tmp_path / "one.vec"
    handed.write_text("1.1,0.9,1.2,0.8")
    code, answers, err = _cli(capsys, "predict", result["id"], str(handed), "--json")
    assert code == 0, err
    assert answers[0]["prediction"] == "high"


def test_a_toy_backbone_is_refused_for_images_in_a_sentence(ws, tiny, plugged):
    """The kind pairs datasets with backbones: an image dataset and a vector backbone are refused, not trained."""
    with pytest.raises(Exception, match="reads vectors, but the dataset 'tiny' holds images"):
        data_kinds.check_backbone(tiny, "toy_dense")
