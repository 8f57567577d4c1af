"""Checks for the whole test run, before any test.

`pip install -e ".[test]"` installs every optional extra the tests exercise (xgboost, lightgbm,
locust, matplotlib, tritonclient...). Their tests skip (`pytest.importorskip`) when one is
missing, which would let a broken install pass as green; so the run refuses to start while
a requirement of the `test` extra in pyproject.toml is missing, naming it and the install
command. Set MLC_TESTS_ALLOW_MISSING_EXTRAS=1 to run a partial install anyway, its tests skipped.

Hypothesis draws the same examples on every run (profile "repeatable", derandomized): a suite
that guards changes must not change its own inputs from run to run, so a red CI is the code's
doing. Exploring new examples is a separate, deliberate run: MLC_HYPOTHESIS_PROFILE=explore
(a random seed each time; a failure prints the blob that replays it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.extras import missing_test_extras

ALLOW_MISSING = "MLC_TESTS_ALLOW_MISSING_EXTRAS"

settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("MLC_HYPOTHESIS_PROFILE", "repeatable"))


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = missing_test_extras()
    if missing and os.environ.get(ALLOW_MISSING) != "1":
        raise pytest.UsageError(
            f"the test extras {', '.join(missing)} are not installed, and their tests would be skipped: "
            f'install them with pip install -e ".[test]" (or set {ALLOW_MISSING}=1 to skip those tests)')


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry of the test's own (MLC_HOME under tmp_path), never a PostgreSQL URL from the environment."""
    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLC_REGISTRY_URL", raising=False)
    return tmp_path / "home"
