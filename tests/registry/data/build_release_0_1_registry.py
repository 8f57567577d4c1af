"""How `release-0.1/` was built: a small registry written by mlc 0.1.0 before typed records.

Run once, at commit 6651b88 (the last one whose registry code read versions as raw dicts), as
`PYTHONPATH=<that commit's src> python build_release_0_1_registry.py OUT`. Its rows are what
that release writes: a file registered by `mlc register`, an optimized child with its runtime
plan, parity and latency, a profile recommendation as `mlc profile` records it, an ONNX file,
bytes registered without a file, a tag, an alias and an active deployment. The test
(tests/registry/test_records.py) reads a copy with today's code; running this script again
with today's code would write today's rows and defeat that test, so it is kept as a record only.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
from skl2onnx import to_onnx
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor


def main(out: Path) -> None:
    from mlc.cli.models import register_file
    from mlc.optimize import optimize
    from mlc.registry import Registry

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    registry = Registry(out)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "iris.joblib"
        joblib.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y), tree)
        register_file(tree, "iris", trust=False, tags={"team": "risk"}, description="a file", registry=registry)
        optimize("iris:1", target="cpu-2", batch_sizes=(1, 16), registry=registry, timing_budget_s=0.01)
        registry.set_alias("iris:2", "prod")
        registry.update_metrics("iris:2", {"profile": {
            "target": "cpu-2", "mode": "inprocess", "slo_p99_ms": 20.0, "created_at": "2026-12-03T09:00:00Z",
            "report": "profile-iris-2-cpu-2.json",
            "recommendation": {"max_batch_size": 32, "max_queue_delay_us": 250, "instances": 1, "workers": 1,
                               "intra_op_threads": 2, "capacity_rps": 1234.5, "replicas": 1, "rate_rps": None,
                               "extrapolated": False},
        }})
        reg_tree = DecisionTreeRegressor(max_depth=2, random_state=0).fit(x, x[:, 0])
        onnx_file = Path(tmp) / "reg.onnx"
        onnx_file.write_bytes(to_onnx(reg_tree, x[:1], target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString())
        register_file(onnx_file, "reg", trust=False, registry=registry)
        mv = registry.get("reg:1")
        registry.register("raw", onnx_file.read_bytes(), format="onnx", framework="onnx", signature=mv.signature)
    registry.record_deployment("iris", {2: 100.0})
    registry.engine.dispose()  # the last connection's close checkpoints the WAL into registry.db


if __name__ == "__main__":
    main(Path(sys.argv[1]))
