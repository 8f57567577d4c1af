"""A registry with versions to package: a forest served by ONNX Runtime alone, the same forest with a
runtime plan that routes small batches to mlc's tree kernel, and a profile recorded for one of them
(the replayed profiling run of tests/profile/data, attached as the version's report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier

from mlc.registry import Registry
from mlc.signature import tabular

N_FEATURES = 4
PROFILE_RUN = Path(__file__).parents[1] / "profile" / "data" / "profile_run.json"
TREES_PLAN = {"engines": [{"engine": "mlc-trees", "max_rows": 64}, {"engine": "ort", "max_rows": None}]}


def forest() -> tuple[bytes, RandomForestClassifier, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    model = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(x, y)
    onx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    return onx.SerializeToString(), model, x


def profile_record(report: dict, name: str) -> dict:
    """The profile record `mlc profile` keeps with a version (profile/runner.py's _record)."""
    body = report["body"]
    rec = body["recommendation"]
    return {"target": body["target"], "mode": body["mode"], "slo_p99_ms": body["slo_p99_ms"],
            "created_at": report["created_at"], "report": name,
            "recommendation": {**rec["serve"], "capacity_rps": rec["capacity_rps"], "replicas": rec["replicas"],
                               "rate_rps": rec["rate_rps"], "extrapolated": rec["extrapolated"]}}


@pytest.fixture(scope="session")
def deploy_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris:1 plain ONNX Runtime; iris:2 the same bytes with a tree-kernel plan; iris:3 plain with a
    recorded profile for cpu-8."""
    home = tmp_path_factory.mktemp("deploy-home")
    reg = Registry(home)
    data, _, _ = forest()
    sig = tabular(N_FEATURES, task="classification", classes=[0, 1, 2])
    reg.register("iris", data, format="onnx", framework="sklearn", signature=sig)
    reg.register("iris", data, format="onnx", framework="sklearn", signature=sig,
                 source={"kind": "optimize", "parent": "iris:1", "runtime": TREES_PLAN, "target": "cpu-2"})
    report = json.loads(PROFILE_RUN.read_text())
    mv = reg.register("iris", data, format="onnx", framework="sklearn", signature=sig,
                      metrics={"profile": profile_record(report, "profile.json")})
    reg.attach_report(mv, "profile.json", json.dumps(report))
    return home


@pytest.fixture()
def registry(deploy_home: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("MLC_HOME", str(deploy_home))
    monkeypatch.delenv("MLC_REGISTRY_URL", raising=False)
    return Registry(deploy_home)
