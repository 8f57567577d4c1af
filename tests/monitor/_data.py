"""Controlled data for the drift checks: 10 features whose distribution the tests choose.

Eight numeric features of different shapes (normal, skewed, bounded, heavy-tailed) and two
categorical-like ones (small integer codes), with a fixed linear model's outputs (a label and a
score) so output drift is exercised too.
"""

from __future__ import annotations

import numpy as np

FEATURES = [f"f{j}" for j in range(10)]
NUMERIC = FEATURES[:8]
CATEGORICAL = FEATURES[8:]
_WEIGHTS = np.array([0.8, -0.5, 0.3, 0.0, 0.2, -0.1, 0.4, 0.1, 0.25, -0.3])


def draw(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Rows from the reference distribution."""
    return np.column_stack([
        rng.normal(0.0, 1.0, rows),
        rng.normal(10.0, 3.0, rows),
        rng.lognormal(0.0, 0.7, rows),
        rng.uniform(-2.0, 2.0, rows),
        rng.exponential(2.0, rows),
        rng.standard_t(5, rows),
        rng.gamma(2.0, 1.5, rows),
        rng.normal(-5.0, 0.5, rows),
        rng.integers(0, 5, rows).astype(float),
        rng.choice([0.0, 1.0, 2.0], rows, p=[0.6, 0.3, 0.1]),
    ])


def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
    """What a fixed linear model answers for x: a 0/1 label and its score."""
    centered = np.nan_to_num(x - np.array([0, 10, 1.3, 0, 2, 0, 3, -5, 2, 0.5]))
    score = centered @ _WEIGHTS
    return {"label": (score > 0).astype(np.int64), "score": score.astype(np.float32)}
