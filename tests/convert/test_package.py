"""How mlc.convert is put together: no converter imports another, and importing it needs no compiled runtime."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import mlc.convert

PACKAGE = Path(mlc.convert.__file__).parent
# What a converter module may import from its own package: the shared helpers, never a sibling converter.
SHARED = {"mlc.convert._common", "mlc.convert._registry", "mlc.convert.graph"}


def _convert_imports(path: Path) -> set[str]:
    """Every mlc.convert module the file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlc.convert"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mlc.convert")}
    return found


def test_converter_modules_import_only_the_shared_helpers():
    modules = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert {p.stem for p in modules} >= {"sklearn", "xgboost", "lightgbm", "onnx", "_common", "_registry", "graph"}
    for path in modules:
        own = f"mlc.convert.{path.stem}"
        allowed = SHARED - {own} if own in SHARED else SHARED
        imported = _convert_imports(path)
        assert imported <= allowed, f"{path.name} imports {sorted(imported - allowed)}: share it through _common.py"
    # The helpers themselves depend on no converter, so the package has no import cycle.
    assert _convert_imports(PACKAGE / "_common.py") == set()
    assert _convert_imports(PACKAGE / "_registry.py") == set()
    assert _convert_imports(PACKAGE / "graph.py") == set()


def test_import_works_without_the_compiled_extension():
    """As if mlc.runtime._core were never built: the import succeeds and loads nothing of mlc.runtime."""
    code = ("import sys; sys.modules['mlc.runtime._core'] = None\n"
            "import mlc.convert\n"
            "print(sorted(m for m, mod in sys.modules.items() if mod and m.split('.')[:2] == ['mlc', 'runtime']))\n"
            "print(sorted(mlc.convert.all_converters()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "MLC_PURE_PYTHON"})
    assert proc.returncode == 0, proc.stderr
    runtime_modules, converters = proc.stdout.splitlines()
    assert runtime_modules == "[]"
    assert converters == "['lightgbm', 'onnx', 'sklearn', 'xgboost']"
