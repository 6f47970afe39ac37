"""The house rules of the code: floors, no import circle, no hidden project import, no TensorFlow on import.

FLOORS is the one table of the layering (ARCHITECTURE.md shows the same): a module may import
project modules of its own floor or below, never above.
"""

import ast
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import core
from tests.conftest import ROOT

# Module name prefix -> floor. The longest matching prefix decides.
FLOORS = {
    "core": 0, "core.errors": 0, "core.events": 0, "core.settings": 0,
    "core.spec": 1,
    "core.store": 2,
    "core.data": 3,
    "core.engine": 4,
    "core.ship": 5,
    "core.service": 6,
    "core.cli": 7, "core.__main__": 7, "core.bench": 7, "pages": 7, "app": 7,
}
HEAVY = ("tensorflow", "tf_keras", "tensorflow_hub", "keras")
CORE_MODULES = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "core.") if m.name != "core.__main__")


def floor(module: str) -> int | None:
    """The floor of a project module (None for a third-party one)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in FLOORS:
            return FLOORS[prefix]
    return None


def _modules(root: Path) -> dict[str, Path]:
    """Every project source file under root: core/, pages/ and app.py, by module name."""
    found = {}
    for path in sorted([*(root / "core").rglob("*.py"), *(root / "pages").glob("*.py"), root / "app.py"]):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path, module: str) -> list[tuple[str, int, str]]:
    """(imported project module, line, where) for every import: "top", "type" (under TYPE_CHECKING) or "function"."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, "function")
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test) and where == "top":
                visit(child, "type")
            elif isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, where) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(child, module, is_package)
                # "from core import x" imports the module core.x when there is one.
                out.extend((f"{target}.{a.name}", child.lineno, where) for a in child.names)
                out.append((target, child.lineno, where))
            else:
                visit(child, where)

    visit(tree, "top")
    return out


def violations(root: Path) -> list[str]:
    """Every broken house rule under root, one sentence each."""
    modules = _modules(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        own = floor(module)
        assert own is not None, f"{module} has no floor in FLOORS"
        for target, line, where in _imports(path, module):
            if target not in modules:
                continue  # third party, or "from core import name" of a non-module
            where_text = f"{path.relative_to(root)}:{line}"
            if where == "function":
                problems.append(f"{where_text}: {module} imports {target} inside a function (import it at the top)")
            if floor(target) > own:
                problems.append(f"{where_text}: {module} (floor {own}) imports {target} (floor {floor(target)}), a higher floor")
            if where == "top" and target != module:
                graph[module].add(target)
    for module, path in modules.items():
        if module.startswith("core"):
            for target, line, _where in _imports(path, module):
                if target.split(".")[0] == "streamlit":
                    problems.append(f"{path.relative_to(root)}:{line}: {module} imports streamlit")
        if module.startswith(("pages", "app")):
            for target, line, _where in _imports(path, module):
                if target.split(".")[0] in HEAVY:
                    problems.append(f"{path.relative_to(root)}:{line}: {module} imports {target} (pages never import TensorFlow)")
    problems += [f"import circle: {' -> '.join(c)}" for c in _cycles(graph)]
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), shown as a path that closes."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group) + [sorted(group)[0]])

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_project_keeps_its_floors():
    assert violations(ROOT) == []


def test_an_upward_import_a_circle_and_a_hidden_import_are_each_caught(tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "core", copy / "core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "pages", copy / "pages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "app.py", copy / "app.py")
    with open(copy / "core" / "spec" / "config.py", "a", encoding="utf-8") as f:
        f.write("\nfrom core.service import jobs  # upward, on purpose\n")
    with open(copy / "core" / "store" / "files.py", "a", encoding="utf-8") as f:
        f.write("\nfrom core.store import runs  # closes a circle: runs imports files\n")
    with open(copy / "core" / "data" / "health.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef sneaky():\n    from core.store import datasets\n    return datasets\n")
    found = violations(copy)
    assert any("core.spec.config (floor 1) imports core.service.jobs (floor 6)" in p for p in found), found
    assert any(p.startswith("import circle:") and "core.store.files" in p and "core.store.runs" in p for p in found), found
    assert any("core.data.health imports core.store.datasets inside a function" in p for p in found), found


def test_every_module_has_a_floor_and_the_table_covers_each_package():
    for module in _modules(ROOT):
        assert floor(module) is not None, module
    packages = {p.name for p in (ROOT / "core").iterdir() if (p / "__init__.py").is_file()}
    assert packages == {"spec", "store", "data", "engine", "ship", "service", "bench", "cli"}


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_no_core_module_imports_streamlit_or_tensorflow_when_imported():
    assert len(CORE_MODULES) >= 30
    out = _fresh(f"import sys, importlib\nfor m in {CORE_MODULES + ['core.__main__']!r}: importlib.import_module(m)\n"
                 "print('streamlit' in sys.modules, 'tensorflow' in sys.modules, __import__('os').environ['TF_USE_LEGACY_KERAS'])")
    assert out == "False False 1"


def test_tf_keras_is_the_keras_in_use():
    out = _fresh("from core.engine import modeling\nfrom core.spec.config import RunConfig\n"
                 "modeling.build(RunConfig('d-0123abcd', backbone='small_cnn', weights='none', strategy='from_scratch',"
                 " image_size=32), 2)\n"
                 "import tensorflow as tf, tf_keras\nprint(tf.keras.Model is tf_keras.Model)")
    assert out == "True"
