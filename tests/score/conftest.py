"""Tiny models in a throwaway registry, and inputs written in every format `mlc score` reads.

- forest: a 3-class random forest fitted on a DataFrame (its feature names a, b, c, d are
  recorded), registered as a joblib file (forest:1) and as its optimized ONNX child (forest:2)
  with a recorded runtime plan (ONNX Runtime, two threads);
- forest-kernel: the same ONNX with the plan `mlc optimize` records for trees: small batches on
  mlc's compiled tree kernel, larger ones on ONNX Runtime (numba compiles it in each worker, so
  only one test pays for it);
- logreg: a binary logistic regression fitted on a bare array (no names: columns by position);
- fails: an ONNX graph that fails on any row whose first value is outside 0..9, as a model can.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlc.registry import Registry
from mlc.signature import Signature, TensorSpec, tabular
from tests.zoo import failing_model

FEATURES = ("a", "b", "c", "d")
ORT_PLAN = {"session": {"intra_op_threads": 2}, "engines": [{"engine": "ort"}]}
TREE_PLAN = {"session": {"intra_op_threads": 2}, "engines": [{"engine": "mlc-trees", "max_rows": 64},
                                                             {"engine": "ort"}]}


@dataclass(frozen=True)
class Models:
    home: Path
    forest: Any  # the fitted estimators, the reference for what mlc score writes
    logreg: Any


def _opset() -> dict[str, int]:
    return {"": 17, "ai.onnx.ml": 3}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    home = tmp_path_factory.mktemp("mlc-home")
    registry = Registry(home)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 4)).astype(np.float32), columns=list(FEATURES))
    y = (frame.a + frame.b > 0).astype(int) + (frame.c > 1).astype(int)
    forest = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(frame, y)
    path = home.parent / "forest.joblib"
    joblib.dump(forest, path)
    parent = registry.register_file(path, name="forest")
    onx = to_onnx(forest, frame.to_numpy()[:1], options={"zipmap": False}, target_opset=_opset())
    base = tabular(4, task="classification", classes=[0, 1, 2])
    named = Signature(base.inputs, base.outputs, base.task, base.classes, {"feature_names": list(FEATURES)})
    registry.register("forest", onx.SerializeToString(), format="onnx", framework="onnx", signature=named,
                      source={"kind": "optimize", "parent": parent.ref, "runtime": ORT_PLAN})
    registry.register("forest-kernel", onx.SerializeToString(), format="onnx", framework="onnx", signature=named,
                      source={"kind": "bytes", "runtime": TREE_PLAN})

    x = rng.normal(size=(60, 4)).astype(np.float32)
    logreg = LogisticRegression().fit(x, (x @ np.arange(4) > 0).astype(int))
    onx = to_onnx(logreg, x[:1], options={"zipmap": False}, target_opset=_opset())
    registry.register("logreg", onx.SerializeToString(), format="onnx", framework="onnx",
                      signature=tabular(4, task="classification", classes=[0, 1]))

    fails = Signature(inputs=(TensorSpec("x", "float32", (None, 2)),), outputs=(TensorSpec("y", "float32", (None,)),))
    registry.register("fails", failing_model(), format="onnx", framework="onnx", signature=fails)
    return Models(home, forest, logreg)


@pytest.fixture
def registry(models: Models) -> Registry:
    return Registry(models.home)


@pytest.fixture
def mlc_env(models: Models) -> Iterator[dict[str, str]]:
    """The environment of an `mlc` subprocess reading the test registry."""
    env = {**os.environ, "MLC_HOME": str(models.home)}
    env.pop("MLC_REGISTRY_URL", None)
    yield env


def frame(n: int, seed: int = 1) -> pd.DataFrame:
    """n rows of the forest's features, columns in another order than the model's, with an id."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(n, 4)).astype(np.float32), columns=list(FEATURES))
    data.insert(0, "id", np.arange(n, dtype=np.int64))
    data["note"] = [f"row {i}" for i in range(n)]
    return data[["id", "d", "note", "b", "a", "c"]]


def read_parts(folder: Path) -> pd.DataFrame:
    """Every part of an output folder, in name order (the input's row order)."""
    import pyarrow.dataset as ds

    parts = sorted(p for p in folder.iterdir() if p.name.startswith("part-"))
    fmt = parts[0].suffix.lstrip(".")
    if fmt == "jsonl":
        return pd.concat([pd.read_json(p, lines=True) for p in parts], ignore_index=True)
    return ds.dataset([str(p) for p in parts], format=fmt).to_table().to_pandas()
