import ast
import pkgutil
import subprocess
import sys

import core
from tests.conftest import ROOT

CORE_MODULES = sorted(f"core.{m.name}" for m in pkgutil.iter_modules(core.__path__) if m.name != "__main__")
LIGHT_MODULES = ["core.config", "core.datasets", "core.runs", "core.jobs", "core.backbones", "core.strategies",
                 "core.charts", "core.events", "core.errors"]


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_no_core_module_imports_streamlit():
    assert len(CORE_MODULES) >= 10
    out = _fresh(f"import sys, importlib\nfor m in {CORE_MODULES + ['core.__main__']!r}: importlib.import_module(m)\n"
                 "print('streamlit' in sys.modules, 'tensorflow' in sys.modules)")
    assert out == "False True"


def test_light_core_modules_do_not_import_tensorflow():
    out = _fresh(f"import sys, importlib\nfor m in {LIGHT_MODULES!r}: importlib.import_module(m)\n"
                 "print('tensorflow' in sys.modules, __import__('os').environ['TF_USE_LEGACY_KERAS'])")
    assert out == "False 1"


def test_pages_and_app_never_import_tensorflow():
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    banned = ("tensorflow", "tf_keras", "tensorflow_hub", "keras")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


def test_tf_keras_is_the_keras_in_use():
    out = _fresh("import core.modeling, tensorflow as tf, tf_keras\nprint(tf.keras.Model is tf_keras.Model)")
    assert out == "True"
