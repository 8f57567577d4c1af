"""Fixtures of the tree tests (the models themselves are the zoo's, tests/zoo.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.zoo import N_FEATURES, with_nans


@pytest.fixture(scope="session")
def eval_rows() -> np.ndarray:
    """Rows the models did not see, with NaNs, values on thresholds and infinities."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, N_FEATURES)).astype(np.float32)
    x = with_nans(x)
    x[7, 0], x[8, 2], x[9, 4] = np.inf, -np.inf, 0.0
    return x
