"""Plain-language help: every control a viewer meets has a tooltip, and each term is explained where it first appears.

The pages are drawn in the states a viewer meets them (no dataset, a dataset, a running, stopped or
finished run), and every input widget in the drawn page must carry help. Branches too costly to
draw here (a computed embedding view, an open preview, …) are covered by reading the page code:
every input widget call must pass help=.
"""

from __future__ import annotations

import ast
import os
import re
import time
from typing import Any, Iterator

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button, DownloadButton, Widget

from tests.pages.conftest import ROOT, app_test, assert_clean

PAGES = ("home", "data", "model", "train", "predictions", "compare", "export")

# Buttons whose label says all there is to say; every other button needs help= as well.
SELF_EXPLANATORY_BUTTONS = ("data.enlarge.", "data.enlarge_close")

# Streamlit calls that draw an input widget (all of them take help=).
INPUT_CALLS = {
    "selectbox", "radio", "slider", "select_slider", "number_input", "text_input", "text_area", "checkbox",
    "toggle", "multiselect", "file_uploader", "camera_input", "segmented_control", "pills", "date_input",
    "time_input", "color_picker", "audio_input",
}
BUTTON_CALLS = {"button", "download_button"}

# The words of the "What do these words mean?" glossary on Home, and the page whose controls first use each
# in the flow Home -> Data -> Model -> Train -> Predictions -> Compare -> Export: there it must be explained
# again, in a tooltip, a caption or the text next to the control (matched as words, case-insensitive).
GLOSSARY = {
    "transfer learning": "home", "dataset": "data", "class": "data", "training images": "data",
    "validation": "data", "test images": "data", "augmentation": "data", "backbone": "model",
    "pretrained": "model", "ImageNet": "model", "feature extraction": "model", "fine-tuning": "model",
    "gradual unfreezing": "model", "from scratch": "model", "epoch": "model", "batch size": "model",
    "learning rate": "model", "overfitting": "model", "accuracy": "predictions", "precision": "predictions",
    "recall": "predictions", "F1": "predictions", "confusion matrix": "predictions", "Grad-CAM": "predictions",
    "TensorFlow Lite": "export", "quantization": "export",
}
# Words used again on a later page, in a way a newcomer must follow there too.
ALSO_EXPLAINED = {"train": ("epoch", "validation", "overfitting", "loss")}


# ---------------------------------------------------------------- reading a drawn page


def nodes(at: AppTest) -> Iterator[Any]:
    """Every element drawn, in every tab, column and expander (AppTest draws closed ones too)."""
    yield from at.main
    yield from at.sidebar


def missing_help(at: AppTest, page: str) -> list[str]:
    """'page: kind "label" (key)' for each drawn input widget, or button that needs it, without help."""
    missing = []
    for node in nodes(at):
        if not isinstance(node, Widget):
            continue
        if isinstance(node, (Button, DownloadButton)) and (node.key or "").startswith(SELF_EXPLANATORY_BUTTONS):
            continue
        if not getattr(node.proto, "help", "").strip():
            missing.append(f"{page}: {node.type} {node.proto.label!r} ({node.key})")
    return missing


def drawn_widgets(at: AppTest) -> set[str]:
    return {f"{n.type}:{n.key}" for n in nodes(at) if isinstance(n, Widget)}


def explanations(at: AppTest) -> str:
    """Tooltips (with the label they explain), captions and text of a drawn page, as one string.

    A bare label explains nothing, so a widget's label counts only together with its help.
    """
    parts = []
    for node in nodes(at):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        help_text = getattr(proto, "help", None)
        if isinstance(help_text, str) and help_text.strip():
            parts.append(f"{getattr(proto, 'label', '')}: {help_text}")
        body = getattr(proto, "body", None)
        if isinstance(body, str):
            parts.append(body)
        parts.extend(getattr(proto, "captions", None) or [])  # radio options' captions
    return "\n".join(parts)


def explained(term: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(term)}", text, re.IGNORECASE) is not None


class Walk:
    """Collects what a page shows over the states it is drawn in."""

    def __init__(self, page: str) -> None:
        self.page = page
        self.missing: set[str] = set()
        self.widgets: set[str] = set()
        self.text: list[str] = []

    def look(self, at: AppTest) -> AppTest:
        assert_clean(at)
        self.missing |= set(missing_help(at, self.page))
        self.widgets |= drawn_widgets(at)
        self.text.append(explanations(at))
        return at

    def assert_helped(self) -> None:
        assert not self.missing, "Widgets without plain-language help:\n" + "\n".join(sorted(self.missing))

    def check(self, at_least: int) -> None:
        """Help on every widget, enough widgets drawn, and this page's terms explained."""
        self.assert_helped()
        # Guard the walk itself: a page that silently drew less would pass for the wrong reason.
        assert len(self.widgets) >= at_least, sorted(self.widgets)
        text = "\n".join(self.text)
        wanted = [t for t, p in GLOSSARY.items() if p == self.page] + list(ALSO_EXPLAINED.get(self.page, ()))
        unexplained = [t for t in wanted if not explained(t, text)]
        assert not unexplained, f"{self.page}: terms first met here, not explained in help or captions: {unexplained}"


# ---------------------------------------------------------------- each page in the states a viewer meets


def test_home(ws):
    walk = Walk("home")
    at = walk.look(app_test("home").run())
    walk.check(at_least=1)
    glossary = next(e for e in at.expander if e.label == "What do these words mean?")
    text = "\n".join(m.value for m in glossary.markdown)
    missing = [t for t in GLOSSARY if not explained(t, text)]
    assert not missing, f"home: the glossary does not explain {missing}"


def test_data(ws, tiny_dataset):
    walk = Walk("data")
    at = walk.look(app_test("data").run())
    at.button(key="data.delete").click()
    walk.look(at.run())  # the confirmation's buttons
    assert {"button:data.delete_yes", "file_uploader:data.upload", "checkbox:data.augment.flip"} <= walk.widgets
    walk.check(at_least=30)


def test_data_without_a_dataset(ws):
    walk = Walk("data")
    walk.look(app_test("data").run())
    walk.assert_helped()


def test_model(ws, tiny_dataset, make_run, monkeypatch):
    make_run("done", dataset_id=tiny_dataset["id"])  # an earlier run to start from
    monkeypatch.delenv("TL_OFFLINE")  # online, "What does the pretrained model see?" has its button (never pressed)
    walk = Walk("model")
    at = walk.look(app_test("model").run())
    for strategy in ("fine_tune", "gradual_unfreeze", "domain_weights"):
        at.selectbox(key="model.strategy").set_value(strategy)
        walk.look(at.run())
    at.selectbox(key="model.strategy").set_value("feature_extraction").run()
    at.radio(key="model_ui.source").set_value("hub")
    walk.look(at.run())
    assert {"selectbox:model.source_run", "radio:model.fine_tune_unit", "text_input:model_ui.hub_handle",
            "toggle:model_ui.count", "button:model_ui.sees"} <= walk.widgets
    walk.check(at_least=40)


def test_model_without_a_dataset(ws):
    walk = Walk("model")
    walk.look(app_test("model").run())
    walk.assert_helped()


def test_train(ws, tiny_dataset, make_run):
    from tests.pages.test_train import EVENTS

    walk = Walk("train")
    walk.look(app_test("train").run())  # a dataset, no run yet
    running = make_run("running", dataset_id=tiny_dataset["id"], events=EVENTS, epochs=4,
                       status={"pid": os.getpid(), "created": time.time(), "phase": "head"})
    at = app_test("train")
    at.query_params["run"] = running.name
    walk.look(at.run())  # the live view, with Cancel
    (running / "status.json").write_text('{"state": "interrupted", "created": 0.0}')
    walk.look(at.run())  # stopped, with Resume
    assert {"button:train.start", "button:train.cancel", "button:train.resume"} <= walk.widgets
    walk.check(at_least=3)


def test_predictions(ws, tiny_dataset, make_run):
    from tests.pages.test_predictions import _with_predictions

    _with_predictions(make_run("done", dataset_id=tiny_dataset["id"]), tiny_dataset)  # mistakes to open
    walk = Walk("predictions")
    at = walk.look(app_test("predictions").run())
    at.toggle(key="pred.use_camera").set_value(True)
    walk.look(at.run())
    assert {"selectbox:pred.cell", "camera_input:pred.camera", "button:pred.embed"} <= walk.widgets
    walk.check(at_least=7)


def test_compare(ws, make_run):
    make_run("done")
    make_run("done")
    walk = Walk("compare")
    at = walk.look(app_test("compare").run())
    at.session_state["compare.table.0"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    walk.look(at.run())  # a selected run: re-run and delete
    assert "button:compare.delete" in walk.widgets
    walk.check(at_least=4)


def test_export(ws, make_run):
    make_run("done")
    walk = Walk("export")
    at = walk.look(app_test("export").run())
    at.selectbox(key="export.format").set_value("labels")
    at.run()
    at.button(key="export.make").click()
    walk.look(at.run())  # the download button
    assert "download_button:export.download" in walk.widgets
    walk.check(at_least=5)


# ---------------------------------------------------------------- branches not drawn above


def widget_calls(page: str) -> Iterator[tuple[str, ast.Call]]:
    tree = ast.parse((ROOT / "pages" / f"{page}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in INPUT_CALLS | BUTTON_CALLS:
                yield node.func.attr, node


def key_of(call: ast.Call) -> str:
    """The widget's key as written (a string, an f-string or an expression)."""
    key = next((k.value for k in call.keywords if k.arg == "key"), None)
    if isinstance(key, ast.Constant):
        return str(key.value)
    return "" if key is None else ast.unparse(key)


@pytest.mark.parametrize("page", PAGES)
def test_every_widget_call_passes_help(page):
    without = [
        f"pages/{page}.py:{call.lineno}: {kind}(key={key_of(call)})"
        for kind, call in widget_calls(page)
        if not any(k.arg == "help" for k in call.keywords)
        and not (kind in BUTTON_CALLS and key_of(call).lstrip("f'\"").startswith(SELF_EXPLANATORY_BUTTONS))
    ]
    assert not without, "Widget calls without help=:\n" + "\n".join(without)
