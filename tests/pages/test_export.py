"""Export: a chosen format is written into the run's exports/ and offered for download; TFLite checks as a table."""

import json

import pytest

from core.ship import export
from tests.pages.conftest import app_test, assert_clean


def test_no_model_yet(ws, make_run):
    make_run("failed")
    at = app_test("export").run()
    assert_clean(at)
    assert "No trained model yet" in at.info[0].value
    assert not at.download_button


def test_chosen_format_is_written_once_and_offered(ws, make_run):
    run_dir = make_run("done", image_size=160)
    at = app_test("export").run()
    assert_clean(at)
    assert at.selectbox(key="export.run").value == run_dir.name
    at.selectbox(key="export.format").set_value("card").run()
    assert not at.download_button  # not made yet
    at.button(key="export.make").click().run()
    assert_clean(at)
    card = run_dir / "exports" / "model_card.md"
    assert card.is_file() and "`accuracy`" in card.read_text()
    download = at.download_button(key="export.download")
    assert download.label == "Download model_card.md"
    # Made once: the next visit offers the same file straight away.
    stamp = card.stat().st_mtime_ns
    at = app_test("export").run()
    at.selectbox(key="export.format").set_value("card").run()
    assert at.download_button(key="export.download").label == "Download model_card.md"
    assert not any(b.key == "export.make" for b in at.button) and card.stat().st_mtime_ns == stamp


def test_model_file_download_shows_how_to_use_it(ws, make_run):
    run_dir = make_run("done", image_size=160)
    at = app_test("export").run()
    assert at.selectbox(key="export.format").value == "keras"
    at.button(key="export.make").click().run()
    assert_clean(at)
    assert (run_dir / "exports" / "model.keras").read_bytes() == (run_dir / "model.keras").read_bytes()
    assert at.download_button(key="export.download").label == "Download model.keras"
    assert any("160×160" in m.value for m in at.markdown)
    (usage,) = [e for e in at.expander if e.label.startswith("How to use it in Python")]  # code folded away
    assert "load_model(\"model.keras\"" in usage.code[0].value
    at.selectbox(key="export.format").set_value("labels").run()
    at.button(key="export.make").click().run()
    assert (run_dir / "exports" / "labels.txt").read_text() == "blue\nred\n"  # split.json's order


def test_tflite_measurements_show_as_a_table(ws, make_run):
    run_dir = make_run("done")
    variants = {
        f: {"file": export.FORMATS[f].filename, "bytes": b, "size_vs_float32": b / 4_000_000, "accuracy": acc,
            "change_points": round(100 * (acc - 0.9), 2), "agreement": agree, "ms_per_image": 2.0,
            "input_type": "uint8" if f == "tflite-int8" else "float32"}
        for f, b, acc, agree in (("tflite", 4_000_000, 0.9, 1.0), ("tflite-fp16", 2_000_000, 0.9, 1.0),
                                 ("tflite-dynamic", 1_000_000, 0.9, 1.0), ("tflite-int8", 1_100_000, 0.89, 0.98))
    }
    (run_dir / "exports").mkdir()
    (run_dir / "exports" / "report.json").write_text(json.dumps(
        {"split": "test", "n": 100, "threads": 1, "keras": {"accuracy": 0.9}, "variants": variants}))
    at = app_test("export").run()
    assert_clean(at)
    assert not any(b.key == "export.measure" for b in at.button)  # all four measured already
    table = at.dataframe[0].value
    assert list(table["variant"]) == [export.FORMATS[f].label for f in export.TFLITE_IDS]
    int8 = table.iloc[3]
    assert (int8["of float32 size"], int8["test accuracy"], int8["change (points)"]) == pytest.approx((27.5, 89.0, -1.0))
    assert any("100 test images" in c.value for c in at.caption)
    # The size sentence quotes this model's table, not a general rule.
    sizes = next(m.value for m in at.markdown if m.value.startswith("Of the float32 file's size"))
    assert f"{export.FORMATS['tflite-int8'].label} 28%" in sizes
    assert not any("quarter to a third" in c.value for c in at.caption)


def test_missing_converters_say_how_to_add_them(ws, make_run, monkeypatch):
    make_run("done")
    monkeypatch.setattr(export.ExportFormat, "available", lambda self: self.module is None)
    at = app_test("export").run()
    assert_clean(at)
    options = at.selectbox(key="export.format").options
    assert export.FORMATS["keras"].label in options and export.FORMATS["tfjs"].label not in options
    notes = " ".join(m.value for m in at.markdown)
    assert "pip install tensorflowjs" in notes and "pip install tf2onnx" in notes
