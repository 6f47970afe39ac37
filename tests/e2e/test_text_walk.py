"""The texts walk in a real browser: upload a CSV, pick its columns, train (quick preset), classify a typed
sentence and see its deciding words highlighted (issue 25)."""

import csv
import re

from tests.e2e.conftest import Walk

WORDS = {"billing": ("invoice", "refund", "charged", "payment", "receipt"),
         "delivery": ("parcel", "courier", "arrived", "tracking", "doorstep")}


def _write_csv(path) -> None:
    """A tiny table whose label column is not named 'label', so the walk has to pick it."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("id", "comment", "topic"))
        n = 0
        for topic, words in WORDS.items():
            for i in range(15):
                n += 1
                writer.writerow((n, f"my {words[i % 5]} and the {words[(i + 2) % 5]} were a problem ({i})", topic))


def test_text_walk(server, browser, tmp_path):
    url, _ = server
    table = tmp_path / "tickets.csv"
    _write_csv(table)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    walk = Walk(page, "text-walk")
    page.goto(url)
    walk.settle()
    walk.nav("Data")

    # 1. Upload the CSV; the page shows its header and guesses the text column; the label column is picked.
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("stFileUploaderDropzone").first.click()
    chooser.value.set_files(str(table))
    walk.settle()
    page.get_by_text("is a table of texts").first.wait_for(timeout=60_000)
    walk.choose("Label column", "topic")
    walk.click(page.get_by_role("button", name="Import the table"))
    page.get_by_text("Imported 'tickets': 30 texts in 2 classes.").first.wait_for(timeout=120_000)
    walk.shot("imported")

    # 2. The Model page offers text encoders; the quick preset is ready as it is.
    walk.nav("Model")
    page.get_by_text("These settings are ready").first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"WordLlama")).first.wait_for(timeout=60_000)

    # 3. Train it (the server caps epochs at 2).
    walk.nav("Train")
    walk.click(page.get_by_role("button", name="Start training"))
    page.get_by_text("Training finished").wait_for(timeout=150_000)
    walk.shot("trained")

    # 4. Classify a typed sentence; its deciding words are highlighted.
    walk.nav("Predictions")
    walk.click(page.get_by_role("tab", name="Try it"))
    trying = page.get_by_role("tabpanel", name="Try it")
    box = trying.get_by_role("textbox").first
    box.fill("the courier left my parcel at the doorstep")
    box.press("Control+Enter")
    walk.settle()
    trying.get_by_text(re.compile(r"% sure\)")).first.wait_for(timeout=120_000)  # "<class> (NN% sure)"
    marked = trying.locator("div.tl-words mark")
    marked.first.wait_for(timeout=60_000)
    assert marked.count() >= 1
    assert set(marked.all_inner_texts()) <= set("the courier left my parcel at the doorstep".split())
    trying.get_by_text(re.compile(r"Deciding words for '|No single word decided")).first.wait_for(timeout=30_000)
    walk.shot("try-it")
    assert not page.get_by_test_id("stException").count()
