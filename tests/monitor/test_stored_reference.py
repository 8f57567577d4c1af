"""References stored with a version (`mlc register --data`, `mlc optimize --data`): `mlc monitor NAME:V`
then needs neither a reference file nor --baseline, and `mlc serve --drift-metrics` finds it too."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from mlc.cli import cli
from mlc.cli.monitor import EXIT_DRIFT
from mlc.monitor.collect import CollectSettings, Counters, PartitionWriter, Sample
from mlc.monitor.serving import feature_names
from mlc.monitor.store import REFERENCE_FILE, stored_reference
from mlc.registry import Registry
from mlc.runtime.scorer import Scorer

ROWS = 2000


@pytest.fixture()
def model_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    path = tmp_path / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, y), path)
    pd.DataFrame(x, columns=[f"c{j}" for j in range(4)]).to_csv(tmp_path / "rows.csv", index=False)
    return path, x


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_register_data_stores_the_reference(home: Path, model_file: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, x = model_file
    code, out = invoke("register", str(path), "--name", "clf", "--data", str(tmp_path / "rows.csv"))
    assert code == 0, out
    registry = Registry(home)
    mv = registry.get("clf:1")
    assert REFERENCE_FILE in mv.reports
    reference = stored_reference(registry, "clf:1")
    assert reference is not None and reference.rows == ROWS
    assert list(reference.features) == feature_names(mv.signature)
    assert set(reference.outputs) == {"label", "probabilities[0]", "probabilities[1]"}
    assert reference.meta["task"] == "classification" and reference.meta["classes"] == [0, 1]
    assert reference.features["x0"].mean == pytest.approx(float(x[:, 0].mean()), abs=1e-6)


def serve_like(root: Path, registry: Registry, ref: str, x: np.ndarray) -> None:
    """Rows and outputs as mlc serve --collect writes them for the version."""
    mv = registry.get(ref)
    scorer = Scorer(registry.artifact_path(mv), runtime_plan=mv.source.runtime, signature=mv.signature)
    writer = PartitionWriter(CollectSettings(root), {(mv.name, mv.version): feature_names(mv.signature)},
                             Counters(None, 0))
    for i in range(0, len(x), 20):
        chunk = x[i:i + 20]
        writer.add(Sample(mv.name, mv.version, None, f"r{i}", 1_700_000_000 * 10**9 + i, chunk, scorer.predict(chunk)))
    writer.flush()


def test_optimize_data_then_monitor_by_name(home: Path, model_file: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    from mlc.optimize import optimize

    path, _ = model_file
    result = optimize(str(path), name="clf", target="cpu-2", data=tmp_path / "rows.csv", timing_budget_s=0.005)
    registry = Registry(home)
    assert result.winner is not None
    winner = registry.get(result.winner)
    assert REFERENCE_FILE in winner.reports
    rng = np.random.default_rng(1)
    same = rng.normal(size=(ROWS, 4)).astype(np.float32)
    serve_like(tmp_path / "same", registry, winner.ref, same)
    code, out = invoke("monitor", winner.ref, "--collected", str(tmp_path / "same"), "--json")
    assert code == 0, out
    body = json.loads(out)["body"]
    assert body["verdict"] == "no drift" and body["rows_reference"] == ROWS
    assert {c["name"] for c in body["columns"] if c["role"] == "output"} >= {"label", "probabilities[1]"}
    moved = same.copy()
    moved[:, 1] += 1.0
    serve_like(tmp_path / "moved", registry, winner.ref, moved)
    code, out = invoke("monitor", "clf", "--collected", str(tmp_path / "moved"), "--json")  # NAME: its latest
    assert code == EXIT_DRIFT, out
    assert "x1" in json.loads(out)["body"]["drifted"]


def test_a_version_without_data_says_how_to_get_a_reference(home: Path, model_file, tmp_path: Path) -> None:
    path, _ = model_file
    assert invoke("register", str(path), "--name", "clf")[0] == 0
    serve_like_dir = tmp_path / "c"
    serve_like_dir.mkdir()
    code, out = invoke("monitor", "clf:1", "--collected", str(serve_like_dir))
    assert code == 1 and "--data" in out and "--baseline" in out
