"""Home: renders, opens without TensorFlow, and the Start-here button leads to the Data page with the sample."""

import json
import os
import subprocess
import sys
import textwrap

from core.store import datasets
from tests.pages.conftest import ROOT, app_test, assert_clean, plotly_charts


def test_home_renders_with_start_button(ws):
    at = app_test("home").run()
    assert_clean(at)
    assert at.title[0].value == "TransferLab"
    start = at.button(key="home.start")
    assert start.proto.type == "primary"
    assert any("backbone" in m.value.lower() for m in at.markdown)


def test_home_and_data_pages_do_not_import_tensorflow(ws, tiny_dataset):
    # A fresh interpreter: the test process may have imported anything already.
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from streamlit.testing.v1 import AppTest
        out = {{}}
        for name in ("home", "data"):
            at = AppTest.from_file({str(ROOT / "pages")!r} + f"/{{name}}.py", default_timeout=30).run()
            out[name] = [e.value for e in at.exception] + [e.value for e in at.error]
        out["charts"] = len(list(at.get("plotly_chart")))
        out["tensorflow"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "tensorflow_hub"))
        print(json.dumps(out))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TL_WORKSPACE": str(ws)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["home"] == [] and out["data"] == []
    assert out["charts"] >= 1  # the Data page really drew the dataset
    assert out["tensorflow"] == []


def test_start_here_loads_the_sample_and_opens_the_data_page(ws):
    at = app_test("app").run()
    assert_clean(at)
    at.button(key="home.start").click().run()
    assert_clean(at)
    found = datasets.list_datasets(ws)
    assert [d["name"] for d in found] == ["shapes"]
    assert at.session_state["dataset_id"] == found[0]["id"]
    assert at.title[0].value == "Data"
    assert len(plotly_charts(at)) >= 1

    # Starting again reuses the sample instead of importing a second copy.
    at.switch_page("pages/home.py").run()
    at.button(key="home.start").click().run()
    assert len(datasets.list_datasets(ws)) == 1
