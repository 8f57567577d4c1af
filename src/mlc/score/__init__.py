"""Batch scoring of files: streamed, multi-process, resumable (`mlc score`); Spark in `mlc.score.spark`.

The public names load on first use, so `import mlc.score.spark` on an executor does not pull
in the multi-process runner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlc.score.model import ScoringModel
    from mlc.score.run import ScoreOptions, ScoreSummary, score_files

_HOMES = {
    "ScoreOptions": "mlc.score.run",
    "ScoreSummary": "mlc.score.run",
    "ScoringModel": "mlc.score.model",
    "score_files": "mlc.score.run",
}

__all__ = ["ScoreOptions", "ScoreSummary", "ScoringModel", "score_files"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mlc.score' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
