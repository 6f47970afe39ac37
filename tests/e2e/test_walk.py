"""The first-time user's walk in a real browser: sample -> quick training -> results -> a phone model."""

import json
import re
import time

from tests.e2e.conftest import SHOTS, Walk

MAX_CLICKS_TO_A_MODEL = 6


def test_first_time_user_walk(server, browser):
    url, ws = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    walk = Walk(page, "walk")
    page.goto(url)
    walk.settle()
    walk.shot("home")

    # 1. Load the shapes sample; the health report appears.
    started = time.monotonic()
    walk.click(page.get_by_role("button", name="Load the sample images and start"))
    page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=60_000)
    page.get_by_role("heading", name="Data", exact=True).wait_for(timeout=60_000)
    walk.shot("data")

    # 2-3. The quick preset is the default; start training and see progress move.
    walk.nav("Train")
    walk.click(page.get_by_role("button", name="Start training"))
    page.get_by_test_id("stProgress").first.wait_for(timeout=60_000)
    # Progress moves: the bars' texts (epochs done, batch k of n) take at least two different values.
    page.wait_for_function(
        """() => {
            const text = [...document.querySelectorAll("[data-testid='stProgress']")].map(e => e.innerText).join("|");
            window.__progressSeen = window.__progressSeen || new Set();
            if (text) window.__progressSeen.add(text);
            return window.__progressSeen.size >= 2;
        }""", polling=250, timeout=120_000)
    run_heading = page.get_by_role("heading", name=re.compile(r"^Run \d{8}-\d{6}-[0-9a-f]{12}$"))
    run_title = run_heading.inner_text()
    walk.shot("training")

    # 4. Leave the page during training and come back: the job is still there.
    walk.nav("Data", counts=False)
    walk.nav("Train", counts=False)
    page.get_by_role("heading", name=run_title, exact=True).wait_for(timeout=60_000)
    walk.shot("reattached")

    # 5. The run finishes; the Predictions page shows the confusion matrix.
    page.get_by_text("Training finished").wait_for(timeout=300_000)
    walk.shot("trained")
    walk.nav("Predictions")
    page.get_by_text("How well it does on images it never saw").wait_for(timeout=60_000)
    walk.shot("test-scores")
    walk.click(page.get_by_role("tab", name="Mistakes"))
    mistakes = page.get_by_role("tabpanel", name="Mistakes")
    mistakes.get_by_test_id("stPlotlyChart").first.wait_for(state="visible", timeout=60_000)
    walk.shot("confusion-matrix")
    assert walk.clicks <= MAX_CLICKS_TO_A_MODEL, f"{walk.clicks} clicks to a trained, evaluated model"
    (SHOTS / "walk-timing.json").write_text(json.dumps(
        {"clicks": walk.clicks, "seconds_first_click_to_confusion_matrix": round(time.monotonic() - started, 1)}))

    # 6. Upload one image and see a prediction.
    walk.click(page.get_by_role("tab", name="Try it"), counts=False)
    trying = page.get_by_role("tabpanel", name="Try it")
    image = next((ws / "datasets").glob("*/circle/*.jpg"))
    with page.expect_file_chooser() as chooser:
        trying.get_by_test_id("stFileUploaderDropzone").first.click()
    chooser.value.set_files(str(image))
    walk.settle()
    trying.get_by_text(re.compile(r"% sure\)")).first.wait_for(timeout=120_000)  # "<class> (NN% sure)"
    walk.shot("try-it")
    assert not page.get_by_test_id("stException").count()

    # 7. Export TensorFlow Lite and receive the download.
    walk.nav("Export", counts=False)
    walk.choose("Format", "TensorFlow Lite, float32", counts=False)
    walk.click(page.get_by_role("button", name="Prepare TensorFlow Lite, float32"), counts=False)
    download_button = page.get_by_role("button", name="Download model_float32.tflite")
    download_button.wait_for(timeout=180_000)
    with page.expect_download(timeout=60_000) as download:
        download_button.click()
    saved = SHOTS / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "model_float32.tflite"
    assert saved.read_bytes()[4:8] == b"TFL3"  # the FlatBuffer identifier of a TensorFlow Lite model
    walk.shot("export-tflite")
    assert not page.get_by_test_id("stException").count()
