"""`mlc rollout` on a running server: new shares taken at the next poll (driven by SIGHUP, not the
clock), checked over many requests before and after; a canary whose guard holds aborts itself."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlc.cli import cli
from mlc.events.outbox import read
from mlc.lifecycle.rollout import Counts, Rollout, parse_guard, read_counts, tripped
from mlc.registry import Registry

from .conftest import N_FEATURES, infer_body, wait_until

ROW = np.zeros((1, N_FEATURES), dtype=np.float32)


def _shares(srv, name: str, body: dict, n: int) -> Counter[str]:
    conn = srv.connection()
    counts: Counter[str] = Counter()
    try:
        for _ in range(n):
            conn.request("POST", f"/v2/models/{name}/infer", body=json.dumps(body))
            response = conn.getresponse()
            data = json.loads(response.read())
            assert response.status == 200, data
            counts[data["model_version"]] += 1
    finally:
        conn.close()
    return counts


def _within(count: int, n: int, share: float) -> bool:
    """Binomial(n, share) within 4.5 sd: a correct server fails this about once in 150,000 runs."""
    return abs(count - n * share) <= 4.5 * math.sqrt(n * share * (1 - share))


def _applied(srv, routes: str) -> bool:
    return sum(f"/v2/models/iris -> {routes}" in line and "worker" in line for line in srv.output) == 2


def test_rollout_changes_the_shares_of_a_running_server(start_server, private_home: Path):
    srv = start_server("iris", "--workers", "2", "--poll-interval", "0", home=private_home)
    assert _shares(srv, "iris", infer_body(ROW), 50) == {"2": 50}  # the latest version, until a rollout
    runner = CliRunner()
    n = 400
    for shares, routes in (({"1": 0.8, "2": 0.2}, "iris:1 80%, iris:2 20%"),
                           ({"1": 0.2, "2": 0.8}, "iris:1 20%, iris:2 80%")):
        split = ",".join(f"iris:{v}:{p * 100:g}" for v, p in shares.items())
        result = runner.invoke(cli, ["rollout", "--split", f"iris={split}"], env={"MLC_HOME": str(private_home)})
        assert result.exit_code == 0, result.output
        os.kill(srv.proc.pid, signal.SIGHUP)
        assert wait_until(lambda routes=routes: _applied(srv, routes), timeout=120), "".join(srv.output)
        counts = _shares(srv, "iris", infer_body(ROW), n)
        assert counts["1"] + counts["2"] == n
        assert _within(counts["2"], n, shares["2"]), counts
    assert Registry(private_home).active_deployment("iris") == {1: 20.0, 2: 80.0}


def test_a_canary_whose_guard_holds_returns_traffic_and_records_why(start_server, private_home: Path):
    registry = Registry(private_home)
    boom = registry.get("boom:1")
    registry.register("boom", registry.artifact_path(boom).read_bytes(), format="onnx", framework="onnx",
                      signature=boom.signature)
    registry.record_deployment("boom", {1: 100.0})
    srv = start_server("boom", "--poll-interval", "0", home=private_home)
    env = {**os.environ, "MLC_HOME": str(private_home)}
    rollout = subprocess.Popen(
        [sys.executable, "-c", "from mlc.cli import cli; cli()", "rollout", "--split", "boom=boom:1:50,boom:2:50",
         "--abort-if", "error_rate > 0.01", "--url", f"http://{srv.url}", "--every", "0.2", "--min-requests", "20",
         "--watch", "300"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert wait_until(lambda: registry.active_deployment("boom") == {1: 50.0, 2: 50.0}, timeout=60)
        os.kill(srv.proc.pid, signal.SIGHUP)
        assert wait_until(lambda: any("boom:2 50%" in line for line in srv.output), timeout=120), "".join(srv.output)
        bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [20.0, 0.0]}]}
        while rollout.poll() is None:  # the canary fails every request: the guard must trip
            srv.request("POST", "/v2/models/boom/infer", bad)
        output = rollout.stdout.read() if rollout.stdout else ""
    finally:
        if rollout.poll() is None:
            rollout.kill()
        rollout.wait()
    assert rollout.returncode == 6, output
    assert "error_rate > 0.01 held" in output and "traffic back to boom:1 100%" in output, output
    assert registry.active_deployment("boom") == {1: 100.0}
    events = read(registry.engine, types=["mlc.model.rollout_aborted"])
    assert len(events) == 1 and "error_rate > 0.01 held for canary boom:2" in events[0].data["why"], events
    os.kill(srv.proc.pid, signal.SIGHUP)
    assert wait_until(lambda: any("boom -> boom:1 100%" in line and "worker" in line for line in srv.output),
                      timeout=120)
    good = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [3.0, 0.0]}]}
    assert _shares(srv, "boom", good, 30) == {"1": 30}


def test_guards_judge_only_the_canary_and_only_once_it_has_enough_requests():
    text = """mlc_inference_requests_total{model="m",version="1",outcome="success"} 1000
mlc_inference_requests_total{model="m",version="1",outcome="server_error"} 500
mlc_inference_requests_total{model="m",version="2",outcome="success"} 98
mlc_inference_requests_total{model="m",version="2",outcome="server_error"} 2
mlc_request_duration_seconds_bucket{model="m",version="2",le="0.001"} 50
mlc_request_duration_seconds_bucket{model="m",version="2",le="0.01"} 98
mlc_request_duration_seconds_bucket{model="m",version="2",le="+Inf"} 98
mlc_inference_requests_total{model="other",version="2",outcome="server_error"} 900"""
    now = read_counts(text, "m")
    rollout = Rollout("m", {1: 90.0, 2: 10.0}, {1: 100.0}, 7)
    assert rollout.canaries == [2] and rollout.fallback() == {1: 100.0}
    rate, p99 = parse_guard("error_rate > 0.01"), parse_guard("p99_ms >= 10")
    assert tripped(rollout, [rate], {}, now, min_requests=101) is None  # not enough requests yet
    assert tripped(rollout, [rate], {}, now, min_requests=100) == (rate, 0.02, 100.0)
    assert tripped(rollout, [rate], {2: Counts(50, 2)}, now, min_requests=10) is None  # none failed since
    assert tripped(rollout, [parse_guard("p99_ms > 10"), p99], {}, now, min_requests=1) == (p99, 10.0, 100.0)
    with pytest.raises(Exception, match="METRIC OP NUMBER"):
        parse_guard("error_rate > old.error_rate")
