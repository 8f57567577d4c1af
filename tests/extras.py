"""The optional extras of pyproject.toml, as the test run and its contract tests read them.

`pip install -e ".[test]"` installs every extra the tests exercise; tests/conftest.py refuses
to start a run while one is missing (their tests would silently skip), and test_suite.py
checks that `pytest.importorskip` is used for optional extras only, never for a required
dependency. Installed distributions are read from their metadata (importlib.metadata), so
nothing is imported to find out (locust monkey-patches the process on import).
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def project(pyproject: Path = PYPROJECT) -> dict[str, Any]:
    """The [project] table of pyproject.toml; {} away from the checkout or without a TOML reader (Python 3.10)."""
    try:
        import tomllib
    except ImportError:
        return {}
    if not pyproject.is_file():
        return {}
    with pyproject.open("rb") as f:
        return dict(tomllib.load(f)["project"])


def satisfied(requirement: str) -> bool:
    """Is the requirement's distribution installed at an allowed version, with its extras' own requirements?"""
    req = Requirement(requirement)
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    if version not in req.specifier:
        return False
    for extra in req.extras:
        for needed in importlib.metadata.requires(req.name) or []:
            sub = Requirement(needed)
            if sub.marker is not None and sub.marker.evaluate({"extra": extra}) and not satisfied(
                    str(Requirement(f"{sub.name}{sub.specifier}"))):
                return False
    return True


def missing_test_extras() -> list[str]:
    """The requirements of the `test` extra that are not installed."""
    return [req for req in project().get("optional-dependencies", {}).get("test", []) if not satisfied(req)]


def distributions(requirements: list[str]) -> set[str]:
    """The canonical distribution names of requirements ("tritonclient[http]>=2.40" -> tritonclient)."""
    return {canonicalize_name(Requirement(req).name) for req in requirements}


@functools.cache
def _module_owners() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())  # reads every installed distribution: once


def distributions_of_module(module: str) -> set[str]:
    """The installed distributions providing a module's top-level package ("skops.io" -> skops);
    for a module nothing installed provides (an extra left out, such as spark), its top-level
    name read as a distribution name ("pyspark" -> pyspark)."""
    top = module.split(".")[0]
    return {canonicalize_name(d) for d in _module_owners().get(top, [canonicalize_name(top)])}
