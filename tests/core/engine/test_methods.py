"""Training methods are plug-ins: every strategy names a registered method, and a new method is one strategy
entry plus one module (here a toy written in the test) that trains and evaluates through the ordinary path."""

import inspect
from pathlib import Path

import numpy as np

from core.data import tfdata
from core.engine import evaluation, method, methods, modeling, training
from core.spec import strategies
from core.spec.config import AugmentConfig, RunConfig
from core.spec.strategies import Phase, Strategy
from core.store import runs
from core.store.files import read_json, write_json


def test_every_strategy_names_a_registered_method_that_has_every_hook():
    hooks = [name for name, _ in inspect.getmembers(method.Method, inspect.isfunction) if not name.startswith("_")]
    assert set(hooks) == {"prepare", "build", "open", "data", "compile", "finish"}
    for strategy_id in strategies.ids():
        found = methods.METHODS[strategies.get(strategy_id).method]
        assert all(callable(getattr(found, hook)) for hook in hooks), (strategy_id, found.id)
    used = {strategies.get(s).method for s in strategies.ids()}
    assert used == set(methods.METHODS) == {"plain", "adaptation", "transfer", "distillation"}


class Grayscale:
    """A toy method: the whole network trains on grayscale copies of the images (colour never helps it)."""

    id = "grayscale"
    ships_source_run = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare(self, config, settle):
        self.calls.append("prepare")
        config, notices = settle(config)
        return config, [*notices, "The toy method trains on grayscale images."]

    def build(self, run):
        self.calls.append("build")
        run.model, run.base = modeling.build(run.config, len(run.info["classes"]))

    def open(self, run, phase):
        self.calls.append(f"open:{phase.name}")
        modeling.apply_phase(run.base, phase)

    def data(self, run, phase, epochs):
        import tensorflow as tf

        self.calls.append(f"data:{phase.name}")
        c = run.config

        def gray(x, y):
            return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), y

        train = tfdata.pipeline(run.root, run.parts["train"], c.image_size, c.batch_size, True, c.seed).map(gray)
        val = tfdata.pipeline(run.root, run.parts["val"], c.image_size, c.batch_size, False, c.seed).map(gray)
        return method.PhaseData(run.model, train, val)

    def compile(self, run, trainer, rate):
        self.calls.append("compile")
        modeling.compile_for(trainer, run.config.optimizer, rate)

    def finish(self, run_dir: Path, config, train):
        self.calls.append("finish")
        write_json(run_dir / "grayscale_report.json", {"channels": 1})
        return {"grayscale": True}


def test_a_toy_method_is_one_entry_plus_one_module_and_trains_through_the_ordinary_path(tiny, ws, monkeypatch):
    toy = Grayscale()
    monkeypatch.setitem(methods.METHODS, toy.id, toy)
    monkeypatch.setitem(strategies.STRATEGIES, "grayscale_scratch", Strategy(
        id="grayscale_scratch", label="Grayscale from scratch", sentence="Train the whole network on grayscale images.",
        use_when="Colour says nothing about your classes.", forced_weights="none",
        phases=lambda c: [Phase("gray", c.epochs, c.learning_rate, "all", label="Everything trains")],
        method=toy.id))
    cfg = RunConfig(dataset_id=tiny["id"], backbone="small_cnn", weights="none", strategy="grayscale_scratch",
                    image_size=32, epochs=2, batch_size=8, patience=0, augment=AugmentConfig(flip=False, rotate=False),
                    ).validate()
    run_dir = runs.create_run(cfg, ws)
    result = training.train_and_compare(cfg, run_dir)

    assert result["state"] == "done" and result["grayscale"] is True and 0.0 <= result["test_accuracy"] <= 1.0
    assert toy.calls == ["prepare", "build", "open:gray", "data:gray", "compile", "finish"]
    kinds = [(e["type"], e.get("phase")) for e in runs.read_events(run_dir) if e["type"] in ("phase_start", "epoch_end")]
    assert kinds == [("phase_start", "gray"), ("epoch_end", "gray"), ("epoch_end", "gray")]
    assert any(e.get("message") == "The toy method trains on grayscale images." for e in runs.read_events(run_dir))
    status = runs.load_status(run_dir)
    assert status.state == "done" and status.progress.phase == "gray" and status.figures.test_accuracy is not None
    assert read_json(run_dir / "grayscale_report.json") == {"channels": 1}
    # The saved model is an ordinary one: evaluated again from model.keras, it gives the recorded accuracy.
    again = evaluation.evaluate(run_dir)
    assert np.isclose(again["accuracy"], result["test_accuracy"])


def _strategy_comparisons(tree) -> list[int]:
    """Lines comparing something's `.strategy` (or `.id` of a strategy) with a string or a tuple of strings."""
    import ast

    def named(node):
        return isinstance(node, ast.Constant) and isinstance(node.value, str) or (
            isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts and all(named(e) for e in node.elts))

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "strategy" for s in sides) and any(named(s) for s in sides):
                found.append(node.lineno)
    return found


def test_no_core_module_outside_spec_compares_a_strategy_with_its_name():
    import ast

    from tests.conftest import ROOT

    offenders = {}
    ids_by_module: dict[str, set[str]] = {}
    for path in (ROOT / "core").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("core/spec/", "core/bench/")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if _strategy_comparisons(tree):
            offenders[rel] = _strategy_comparisons(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in strategies.ids():
                ids_by_module.setdefault(node.value, set()).add(rel)
    assert offenders == {}
    assert {s: sorted(m) for s, m in ids_by_module.items() if len(m) > 2} == {}
