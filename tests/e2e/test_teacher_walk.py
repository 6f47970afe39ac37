"""Issue 28's walk, repeated in a real browser as a teacher preparing a demo would (offline, a fresh workspace).

Two datasets uploaded as zips (the second, images from where the model will be used, never becomes the dataset
in hand), a search whose list follows it to the end, domain-adversarial training with its run without
adaptation (the Train page frees itself when both have finished, no navigation), a pruning with its verdict,
layer transfer refused offline until the person chooses random weights, and on every page no 'None' and none
of the jargon listed in item 10. Tiny generated images (4 classes x 16, 64 px); the server caps epochs at 2.
"""

from __future__ import annotations

import re
import zipfile

from core.data import samples
from core.spec import backbones
from tests.e2e.conftest import Walk

SOURCE, TARGET = "classroom", "field"
# Item 10's jargon and item 12's 'None': raw parameter and phase names, tool-specific words, SI-prefixed rates.
JARGON = re.compile(r"\bNone\b|valley|fastai|\(pruned\)|hidden_units|label_smoothing|Optimization History|"
                    r"distill_head|source_only|domain_adversarial|layer_transfer|feature_extraction|"
                    r"\b(?:100n|1μ|10μ)\b|spreads apart|domain-adversarial \(dann\)")


def _zip(tmp, name: str, draw) -> str:
    """A zip of class folders (circle, square, star, triangle), 16 small drawings each."""
    folder = draw(tmp / name, per_class=16, size=64, seed=3)
    path = tmp / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for image in sorted(folder.rglob("*.png")):
            zf.write(image, image.relative_to(folder).as_posix())
    return str(path)


def plain_words(page, where: str) -> str:
    """The page's text, checked for jargon and 'None' (the raw settings JSON aside)."""
    text = page.evaluate("""() => {
        let text = document.body.innerText;
        document.querySelectorAll("[data-testid='stJson']").forEach(e => { text = text.replace(e.innerText, ""); });
        return text + "\\n" + [...document.querySelectorAll('input, textarea')].map(e => e.value).join("\\n");
    }""")
    found = JARGON.search(text)
    assert found is None, (where, found and text[max(0, found.start() - 80):found.end() + 80])
    return text


def upload(walk: Walk, path: str) -> None:
    page = walk.page
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("stFileUploaderDropzone").first.click()
    chooser.value.set_files(path)
    walk.settle()


def in_hand(walk: Walk, title: str) -> None:
    """The page names the first dataset as the one in hand, never the upload that came after it."""
    walk.nav(title, counts=False)
    walk.page.get_by_text(f"Dataset in hand: {SOURCE}").first.wait_for(timeout=30_000)
    assert f"Dataset in hand: {TARGET}" not in plain_words(walk.page, title)


def stand_in_weights(home) -> str:
    """The quick preset's backbone (MobileNet V2 0.35, 128 px) with random weights, saved where Keras keeps its
    ImageNet weights in the server's home: offline, runs then train on it as on a prepared demo computer, while
    every other backbone has no weights (so layer transfer into one of them meets the offline refusal)."""
    from core.engine import networks  # TensorFlow, only for this test

    spec = backbones.get("mobilenet_v2_0.35")
    models = home / ".keras" / "models"
    models.mkdir(parents=True, exist_ok=True)
    networks.make_network(spec, 128).save_weights(str(models / spec.weights_candidates(128)[0].name))
    return spec.label


def pick(walk: Walk, box_label: str, option: str) -> None:
    """Choose an option of a selectbox by typing its start (the list shows only the options in view), and wait
    until the box shows it (a busy machine may drop the first try)."""
    box = walk.page.get_by_test_id("stSelectbox").filter(has_text=box_label).first
    for _ in range(3):
        walk.settle()  # a rerun under way redraws the list under the click
        try:
            box.locator("input").first.click()
            walk.page.keyboard.type(option[:12])
            walk.page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click(timeout=20_000)
            walk.settle()
            # the choice shows as the box's text or as its search input's value
            walk.page.wait_for_function(
                """([label, option]) => [...document.querySelectorAll("[data-testid='stSelectbox']")].some(
                     e => e.innerText.includes(label) && (e.innerText.includes(option)
                          || [...e.querySelectorAll("input")].some(i => i.value.includes(option))))""",
                arg=[box_label, option], timeout=20_000)
            return
        except Exception:  # noqa: BLE001 - playwright's timeout: try again
            walk.page.keyboard.press("Escape")
    raise AssertionError(f"could not choose {option!r} in {box_label!r}")


def strategy(walk: Walk, label: str) -> None:
    """Choose a transfer strategy on the Model page, inside its 'Customise' expander."""
    walk.nav("Model", counts=False)
    box = walk.page.get_by_test_id("stSelectbox").filter(has_text="Transfer strategy").first
    if not box.is_visible():
        walk.click(walk.page.get_by_text("Customise: strategy, backbone").first, counts=False)
    pick(walk, "Transfer strategy", label)


def wait_enabled(walk: Walk, name: str, timeout_s: float = 30) -> None:
    """Wait, without any click or reload, until the page has freed the button with this name."""
    walk.page.wait_for_function(
        """name => [...document.querySelectorAll("button")].some(b => b.innerText.includes(name) && !b.disabled)""",
        arg=name, timeout=timeout_s * 1000, polling=500)
    walk.settle()


def start_button(page):
    return page.get_by_role("button", name="Start training")


def test_a_teachers_walk_through_the_newer_pages(server, browser, tmp_path):
    url, ws = server
    stand_in_weights(ws.parent)  # the server's HOME
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)  # a busy 2-core machine: clicks wait for the app, not for a fixed 30 s
    walk = Walk(page, "teacher")
    page.goto(url)
    walk.settle()

    # 1. Two datasets: the second (images from where the model will be used) does not change the one in hand.
    walk.nav("Data", counts=False)
    upload(walk, _zip(tmp_path, SOURCE, samples.generate_shapes))
    page.get_by_text(f"Imported '{SOURCE}'").first.wait_for(timeout=60_000)
    walk.click(page.get_by_text("These are images from where the model will be used").first, counts=False)
    upload(walk, _zip(tmp_path, TARGET, samples.generate_shapes_field))
    page.get_by_text(f"Imported '{TARGET}'").first.wait_for(timeout=60_000)
    walk.shot("two-datasets")
    for title in ("Model", "Train", "Search"):
        in_hand(walk, title)

    # 2. A search (one trial): its list and trials follow it to the end without a reload; Start is free again.
    trials = page.get_by_label("Trials", exact=True)
    trials.fill("1")
    trials.press("Tab")
    walk.settle()
    walk.click(page.get_by_role("button", name="Start the search"), counts=False)
    page.get_by_text(re.compile(r"^The search is done: \d+ trials finished")).first.wait_for(timeout=240_000)
    text = plain_words(page, "Search, done")
    assert "waiting to start" not in text and "queued" not in text
    wait_enabled(walk, "Start the search")  # the page redraws itself once the search has ended
    walk.shot("search-done")

    # 3. Domain-adversarial training with its run without adaptation, against the field images.
    strategy(walk, "Domain-adversarial (DANN)")
    # The target is chosen separately, and named.
    page.wait_for_function(
        """target => document.body.innerText.includes(target + " (")
                    || [...document.querySelectorAll("input")].some(i => i.value.includes(target + " ("))""",
        arg=TARGET)
    plain_words(page, "Model, DANN")
    walk.click(page.get_by_text("Also train without adaptation, to see whether it helps").first, counts=False)
    walk.nav("Train", counts=False)
    walk.click(start_button(page), counts=False)
    page.get_by_text("is training now: the same network without adaptation").first.wait_for(timeout=240_000)
    assert start_button(page).is_disabled()
    walk.shot("dann-companion")
    # Both finish; the page frees Start by itself (item 2: it stayed greyed until one left the page).
    wait_enabled(walk, "Start training", timeout_s=240)
    text = plain_words(page, "Train, DANN done")
    assert "Training finished" in text and "still training" not in text
    assert re.search(r"Test accuracy \d+\.\d% (?:\(guessing would get 25\.0%\)|is about what guessing gets)", text)
    assert "the same network without adaptation" in text  # its verdict names the companion it is measured against
    walk.shot("dann-done")
    walk.nav("Predictions", counts=False)
    page.get_by_text("How well it does on images it never saw").wait_for(timeout=60_000)
    assert re.search(r"Test accuracy \d+\.\d%", plain_words(page, "Predictions"))

    # 4. A pruning of that run, on the Export page: its verdict against the model before pruning.
    walk.nav("Export", counts=False)
    epochs = page.get_by_label("Fine-tuning epochs", exact=True)
    epochs.fill("1")  # one epoch is enough to see the verdict (the server's epoch cap does not apply to pruning)
    epochs.press("Tab")
    walk.settle()
    walk.click(page.get_by_role("button", name="Prune into a new run"), counts=False)
    page.get_by_text(re.compile(r"for the same model before pruning \([+-]\d+\.\d points\)|about what guessing "
                                r"gets")).first.wait_for(timeout=240_000)
    plain_words(page, "Export, pruned")
    walk.shot("pruned")

    # 5. Layer transfer offline: refused with the sentence of what can be done, or only on an explicit choice.
    strategy(walk, "Layer transfer (another architecture)")
    pick(walk, "Backbone", "MobileNet V2 (width 0.5)")  # no weights on this computer
    walk.nav("Train", counts=False)
    refusal = page.get_by_text(re.compile(r"MobileNet V2 \(width 0\.5\) are not on this computer .* would start from "
                                          r"random weights where nothing is copied")).first
    refusal.wait_for(timeout=30_000)
    assert start_button(page).is_disabled()
    walk.click(page.get_by_text(re.compile(r"from random weights anyway")).first, counts=False)
    wait_enabled(walk, "Start training")  # on the person's explicit choice only
    plain_words(page, "Train, layer transfer")
    walk.shot("layer-transfer-offline")

    # 6. Every page in plain words.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Home").click()  # the default page, at "/"
    page.get_by_role("heading", name="TransferLab").first.wait_for()
    walk.settle()
    plain_words(page, "Home")
    for title in ("Data", "Model", "Train", "Search", "Predictions", "Compare", "Export"):
        walk.nav(title, counts=False)
        plain_words(page, title)
        assert not page.get_by_test_id("stException").count(), title
