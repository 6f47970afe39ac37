"""Compare: one table row per run, with what was trained and how it went."""

from core import runs
from tests.pages.conftest import app_test, assert_clean


def test_empty_workspace_shows_guidance(ws):
    at = app_test("compare").run()
    assert_clean(at)
    assert "No runs yet" in at.info[0].value


def test_table_of_all_runs(ws, tiny_dataset, make_run):
    done = make_run("done", dataset_id=tiny_dataset["id"], backbone="efficientnet_b0", image_size=224,
                    strategy="fine_tune", epochs=6, fine_tune_epochs=4)
    failed = make_run("failed", dataset_id="gone-0123abcd", backbone="small_cnn", weights="none",
                      strategy="from_scratch", epochs=30)
    at = app_test("compare").run()
    assert_clean(at)
    table = at.dataframe[0].value
    rows = {row["run"]: row for row in table.to_dict("records")}
    assert list(rows) == [failed.name, done.name]  # newest first
    row = rows[done.name]
    assert (row["state"], row["dataset"], row["backbone"], row["strategy"]) == (
        "finished", "tiny", "EfficientNet B0", "Fine-tuning")
    assert (row["epochs"], row["image size"], row["train seconds"]) == (10, 224, 12.5)
    assert row["test accuracy"] == 0.9
    assert round(row["macro F1"], 4) == 0.899
    row = rows[failed.name]
    assert (row["state"], row["dataset"], row["backbone"], row["epochs"]) == (
        "failed", "gone-0123abcd", "Small CNN (no pretraining)", 30)
    assert row["test accuracy"] != row["test accuracy"]  # NaN: not tested


def test_an_unexpected_error_is_a_friendly_sentence_and_a_logged_traceback(ws, monkeypatch, caplog):
    def broken(ws):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runs, "list_runs", broken)
    at = app_test("compare").run()
    assert not at.exception
    assert "Something went wrong" in at.error[0].value
    assert "disk on fire" not in at.error[0].value
    assert any("disk on fire" in (r.exc_text or "") for r in caplog.records)
