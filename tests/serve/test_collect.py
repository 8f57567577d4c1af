"""`mlc serve --collect`: answered requests land in Parquet files, written on SIGTERM at the latest."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from .conftest import infer_body


def test_requests_are_collected_counted_and_flushed_on_sigterm(start_server, tmp_path: Path) -> None:
    collected = tmp_path / "collected"
    server = start_server("iris:1", "--collect", str(collected), "--collect-hash", "x3", "--workers", "2")
    rng = np.random.default_rng(0)
    sent = {}
    for i in range(6):
        x = rng.normal(size=(2, 4)).astype(np.float32)
        sent[f"req-{i}"] = x
        path = "/v2/models/iris/infer" if i % 2 else "/v2/models/iris/versions/1/infer"
        status, _ = server.json("POST", path, infer_body(x, id=f"req-{i}"))
        assert status == 200
    status, _, metrics = server.request("GET", "/metrics")
    assert "mlc_collect_requests_sampled_total 6" in metrics.decode()
    assert server.stop() == 0
    table = ds.dataset(collected, format="parquet", partitioning="hive").to_table().to_pandas()
    assert sorted(set(table["request_id"])) == sorted(sent)
    assert len(table) == 12 and set(table["model"]) == {"iris"} and set(table["version"]) == {1}
    for rid, x in sent.items():
        rows = table[table["request_id"] == rid].sort_values("row")
        np.testing.assert_allclose(rows[["x0", "x1", "x2"]].to_numpy(), x[:, :3], rtol=1e-6)
        assert rows["x3"].str.len().eq(16).all()  # hashed, not the value
        assert rows["arm"].isna().all() == (int(rid.split("-")[1]) % 2 == 0)  # unversioned requests record the arm
    assert {"output:label", "output:probabilities[0]"} <= set(table.columns)


def test_collect_flags_are_checked_before_serving(start_server, tmp_path: Path) -> None:
    import pytest

    with pytest.raises(RuntimeError, match="no feature named nope"):
        start_server("iris:1", "--collect", str(tmp_path), "--collect-exclude", "nope")


def test_drift_metrics_on_a_live_server(start_server, tmp_path: Path) -> None:
    """--drift-metrics: a background thread scores the served traffic per feature; /metrics shows it.

    The reference is of N(0, 1) rows; the traffic moves x2 by 3 sd, so x2 and only x2 is flagged.
    Scrapes are polled (the score is recomputed every 0.2 s), never timed.
    """
    from mlc.monitor.summary import DataSummary

    from .conftest import wait_until

    rng = np.random.default_rng(1)
    ref = DataSummary.from_rows(rng.normal(size=(3000, 4)), feature_names=["x0", "x1", "x2", "x3"],
                                meta={"ref": "iris:1"}).save(tmp_path / "ref.json")
    server = start_server("iris:1", "--drift-metrics", "--drift-reference", str(ref), "--drift-interval", "0.2",
                          "--workers", "2")
    for i in range(30):
        x = rng.normal(size=(20, 4)).astype(np.float32)
        x[:, 2] += 3.0
        status, _ = server.json("POST", "/v2/models/iris/infer", infer_body(x, id=f"r{i}"))
        assert status == 200

    def scrape() -> str:
        return server.request("GET", "/metrics")[2].decode()

    assert wait_until(lambda: 'mlc_drift_window_rows{model="iris",version="1"} 600' in scrape(), 30)
    text = scrape()
    flagged = re.findall(r'^mlc_drift_flagged\{model="iris",version="1",column="(x\d)",role="feature"\} 1$',
                         text, re.M)
    assert flagged == ["x2"]
    assert server.stop() == 0


def test_drift_metrics_need_a_reference(start_server) -> None:
    import pytest

    with pytest.raises(RuntimeError, match="no reference to score drift against"):
        start_server("iris:1", "--drift-metrics")
