"""Helpers shared by the loading tests."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np


def save_pickle(obj: Any, path: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def save_joblib(obj: Any, path: Path, compress: Any = 0) -> Path:
    joblib.dump(obj, path, compress=compress)
    return path


def assert_same_predictions(original: Any, loaded: Any, X: np.ndarray) -> None:
    """Exactly the same outputs: loading must not change a model."""
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    if hasattr(original, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
