"""How the test suite itself is put together: a package, one model zoo, skips only for real extras."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import extras

TESTS = Path(__file__).parent


def _python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_test_folder_is_a_package():
    """Modules are imported as tests.x.y, never by bare names such as `convert` or `trees` that a
    folder on sys.path would make top-level (and that collide with each other and the stdlib)."""
    folders = {p.parent for p in _python_files() if p.name.startswith("test_") or p.name == "conftest.py"}
    assert [str(f.relative_to(TESTS.parent)) for f in sorted(folders) if not (f / "__init__.py").exists()] == []


def test_no_test_imports_a_test_folder_by_a_bare_name():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    bare = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            bare += [f"{path.relative_to(TESTS)}: {n}" for n in names if n.split(".")[0] in folders | {"zoo"}]
    assert bare == []


def _importorskipped() -> list[tuple[str, str]]:
    """(file, module) of every pytest.importorskip("module") in the tests."""
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "importorskip" and node.args and isinstance(node.args[0], ast.Constant)):
                found.append((str(path.relative_to(TESTS)), str(node.args[0].value)))
    return found


def test_importorskip_is_only_for_optional_extras():
    """A required dependency is imported outright: skipping its tests would hide a broken install."""
    project = extras.project()
    if not project:
        pytest.skip("needs pyproject.toml and Python 3.11's tomllib")
    required = extras.distributions(project["dependencies"])
    optional = extras.distributions([r for reqs in project["optional-dependencies"].values() for r in reqs]) - required
    wrong = []
    for path, module in _importorskipped():
        provided = extras.distributions_of_module(module)
        if provided & required or not provided & optional:
            wrong.append(f"{path}: {module} ({', '.join(sorted(provided)) or 'not installed'})")
    assert wrong == [], "import required dependencies normally; importorskip is for optional extras"


def test_an_extra_counts_as_installed_only_at_an_allowed_version_with_its_own_extras():
    assert extras.satisfied("numpy>=1.0") and not extras.satisfied("numpy>=999")
    assert not extras.satisfied("no-such-distribution-of-mlc-tests")
    assert extras.satisfied("tritonclient[http]")  # its http extra's requirements (geventhttpclient...) too
