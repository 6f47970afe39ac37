"""Two people on one shared server (TL_HOSTED=1), in two browser contexts: neither sees the other's work, and
no page shows either of them a server path (the workspace, the home folder with its Keras cache)."""

import json
import re
import time

from tests.e2e.conftest import Walk

RUN_HEADING = re.compile(r"^Run \d{8}-\d{6}-[0-9a-f]{12}$")


def shown(page) -> str:
    """Everything the visitor can read: the page's text plus the values shown in inputs (selectboxes)."""
    values = page.eval_on_selector_all("input, textarea", "els => els.map(e => e.value)")
    return page.locator("body").inner_text() + "\n" + "\n".join(values)


def wait_until_shown(page, text: str, timeout_s: float = 60) -> None:
    page.wait_for_function(
        """text => document.body.innerText.includes(text)
                  || [...document.querySelectorAll('input, textarea')].some(e => e.value.includes(text))""",
        arg=text, timeout=timeout_s * 1000)


def assert_no_server_path(page, root, where: str) -> None:
    """The server's workspace root and home folder (the root's parent here) appear nowhere on the page."""
    text = shown(page)
    for secret in {str(root), str(root.resolve()), str(root.parent), str(root.parent.resolve())}:
        assert secret not in text, (where, secret)


def test_two_visitors_never_see_each_others_datasets_or_runs(hosted_server, browser):
    url, root = hosted_server
    alice_ctx, bob_ctx = browser.new_context(viewport={"width": 1400, "height": 1000}), browser.new_context(
        viewport={"width": 1400, "height": 1000})
    alice, bob = Walk(alice_ctx.new_page(), "hosted-alice"), Walk(bob_ctx.new_page(), "hosted-bob")

    # Alice loads the sample and starts training.
    alice.page.goto(url)
    alice.settle()
    alice.page.get_by_text("private to this browser tab").wait_for(timeout=60_000)
    alice.click(alice.page.get_by_role("button", name="Load the sample images and look at them"))
    alice.page.get_by_role("heading", name="Data", exact=True).wait_for(timeout=60_000)
    (dataset_dir,) = root.glob("sessions/**/datasets/shapes-*")
    dataset_id = dataset_dir.name
    wait_until_shown(alice.page, dataset_id)
    alice.shot("data")
    alice.nav("Train")
    alice.click(alice.page.get_by_role("button", name="Start training"))
    run_id = alice.page.get_by_role("heading", name=RUN_HEADING).inner_text().removeprefix("Run ")
    alice.shot("training")

    # Bob, on the same server at the same time, finds an empty workspace everywhere.
    bob.page.goto(url)
    bob.settle()
    # Each page says it is empty (a run table is drawn on a canvas, so its text could not be searched).
    empty = {"Data": "No dataset yet", "Train": "There is no dataset yet", "Predictions": "No run has finished",
             "Compare": "No runs yet", "Export": "No trained model yet"}
    for title, says in empty.items():
        bob.nav(title)
        bob.page.get_by_text(says).first.wait_for(timeout=30_000)
        bob.shot(title.lower())
        assert dataset_id not in shown(bob.page) and run_id not in shown(bob.page), title
        assert_no_server_path(bob.page, root, title)

    # Even Alice's run link (say, copied from her address bar) shows Bob nothing of hers.
    bob.page.goto(f"{url}/train?run={run_id}")
    bob.settle()
    bob.shot("alices-link")
    assert bob.page.get_by_role("heading", name=RUN_HEADING).count() == 0
    assert run_id not in shown(bob.page)
    assert_no_server_path(bob.page, root, "a link to Alice's run")

    # Alice asks what the pretrained model sees: no weights on this offline server, said without a server path.
    alice.nav("Model", counts=False)
    alice.page.get_by_text("What does the pretrained model see?").click()
    # Offline and without the classifier file, the page says why it cannot look, instead of a button that fails.
    alice.page.get_by_text("so it cannot name what it sees here").first.wait_for(timeout=30_000)
    assert alice.page.get_by_role("button", name="Look at a few of my images").count() == 0
    alice.shot("model-sees")
    assert_no_server_path(alice.page, root, "Model page")

    # Alice still has both; each visitor has a separate folder on the server.
    alice.nav("Data", counts=False)
    wait_until_shown(alice.page, dataset_id)
    alice.nav("Train", counts=False)
    alice.page.get_by_role("heading", name=f"Run {run_id}", exact=True).wait_for(timeout=30_000)
    alice.shot("still-hers")
    # Only Alice wrote anything, so only she has a folder: Bob's page views made none.
    assert [p.parent.parent for p in root.glob(f"sessions/**/runs/{run_id}")] == [dataset_dir.parent.parent]
    assert len([p for p in root.glob("sessions/**/.last_seen")]) == 1

    # However her run ends (an offline server may lack its weights), the Train page names no server path.
    status = next(root.glob(f"sessions/**/runs/{run_id}/status.json"))
    deadline = time.monotonic() + 300
    while json.loads(status.read_text()).get("state") in ("queued", "running"):
        assert time.monotonic() < deadline, status.read_text()
        time.sleep(1)
    alice.nav("Data", counts=False)
    alice.nav("Train", counts=False)
    alice.page.get_by_role("heading", name=f"Run {run_id}", exact=True).wait_for(timeout=30_000)
    alice.shot("run-ended")
    for title in ("Train", "Predictions", "Compare", "Export"):
        if title != "Train":
            alice.nav(title, counts=False)
        assert_no_server_path(alice.page, root, title)
    for page in (alice.page, bob.page):
        assert not page.get_by_test_id("stException").count()
    alice_ctx.close()
    bob_ctx.close()
