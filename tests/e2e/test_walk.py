"""The first-time user's walk in a real browser: sample -> quick training -> results -> a phone model."""

import json
import re
import time

from tests.e2e.conftest import SHOTS, Walk

MAX_CLICKS_TO_A_MODEL = 6  # Home -> the first confusion matrix, tab clicks included


def shown_value(selectbox) -> str:
    """What a selectbox shows: its text, or the value of its search input (where Streamlit puts the choice)."""
    inputs = selectbox.locator("input")
    return " ".join([selectbox.inner_text(), *(inputs.nth(k).input_value() for k in range(inputs.count()))])


def test_first_time_user_walk(server, browser):
    url, ws = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    walk = Walk(page, "walk")
    page.goto(url)
    walk.settle()
    walk.shot("home")

    # 1. Load the shapes sample; the health report appears.
    started = time.monotonic()
    walk.click(page.get_by_role("button", name="Load the sample images and look at them"))
    page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=60_000)
    page.get_by_role("heading", name="Data", exact=True).wait_for(timeout=60_000)
    walk.shot("data")

    # A detour (not counted): choose the Balanced preset on the Model page, to check that a reload keeps it.
    walk.nav("Model", counts=False)
    walk.click(page.get_by_test_id("stRadio").first.get_by_text("Balanced", exact=True), counts=False)
    page.get_by_text(re.compile(r"Balanced settings")).first.wait_for(timeout=60_000)

    # 2-3. Start training with those settings and see progress move.
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
    # A browser reload mid-training: the run is picked up again and the Model settings are kept.
    page.reload()
    walk.settle()
    page.get_by_role("heading", name=run_title, exact=True).wait_for(timeout=60_000)
    walk.nav("Model", counts=False)
    preset = page.get_by_test_id("stRadio").first
    assert preset.get_by_role("radio", name=re.compile("Balanced")).is_checked(), "the reload reset the preset"
    walk.shot("model-after-reload")
    walk.nav("Train", counts=False)

    # 5. The run finishes; the Predictions page shows the confusion matrix.
    page.get_by_text("Training finished").wait_for(timeout=300_000)
    walk.shot("trained")
    walk.nav("Predictions")
    page.get_by_text("How well it does on images it never saw").wait_for(timeout=60_000)
    # The confusion matrix is in the first tab: visible without a tab click.
    first = page.get_by_role("tabpanel", name="Test scores and confusion matrix")
    matrix = first.get_by_test_id("stPlotlyChart").first
    matrix.wait_for(state="visible", timeout=60_000)
    assert "Confusion matrix" in matrix.inner_text()
    walk.shot("confusion-matrix")
    seconds = round(time.monotonic() - started, 1)
    assert walk.clicks <= MAX_CLICKS_TO_A_MODEL, f"{walk.clicks} clicks to the first confusion matrix"
    (SHOTS / "walk-timing.json").write_text(json.dumps(
        {"clicks": walk.clicks, "seconds_first_click_to_confusion_matrix": seconds}))

    # Clicking a cell of the matrix shows that cell's images (the selector beside it follows).
    run_dir = next((ws / "runs").glob(run_title.removeprefix("Run ")))
    evaluation = json.loads((run_dir / "eval.json").read_text())
    classes, cm = evaluation["classes"], evaluation["confusion_matrix"]
    n = len(classes)
    cell = first.get_by_test_id("stSelectbox").filter(has_text="Show the images of one cell")
    before = shown_value(cell)
    label = lambda i, j: f"true {classes[i]} → guessed {classes[j]} ({cm[i][j]})"  # noqa: E731
    i, j = next((i, j) for i in range(n) for j in range(n) if cm[i][j] and label(i, j) not in before)
    # As a user does: point at the cell (Plotly's drag layer takes the pointer and shows the cell's hover
    # label; its click event needs that hover first), then click.
    box = matrix.locator("g.trace.scatter path.point").nth(i * n + j).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    matrix.locator(".hoverlayer .hovertext").first.wait_for(timeout=10_000)
    page.mouse.click(x, y)
    walk.settle()
    expected = label(i, j)
    page.wait_for_function(
        """t => [...document.querySelectorAll("[data-testid='stSelectbox']")].some(
                 e => e.innerText.includes(t) || [...e.querySelectorAll("input")].some(i => i.value.includes(t)))""",
        arg=expected, timeout=30_000)
    assert expected in shown_value(cell)
    walk.shot("clicked-cell")

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
