"""Controlled rollout end to end: --split shares hold over many requests and the split is recorded."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections import Counter

import numpy as np

from mlc.registry import Registry

from .conftest import N_FEATURES, infer_body, wait_until

ROW = np.zeros((1, N_FEATURES), dtype=np.float32)


def test_split_shares_hold_and_explicit_versions_bypass_it(start_server, private_home):
    srv = start_server("--split", "iris=iris:1:80,iris:2:20", home=private_home)
    assert Registry(private_home).active_deployment("iris") == {1: 80.0, 2: 20.0}
    conn = srv.connection()
    n = 400
    counts: Counter[str] = Counter()
    for _ in range(n):
        conn.request("POST", "/v2/models/iris/infer", body=json.dumps(infer_body(ROW)))
        response = conn.getresponse()
        assert response.status == 200
        counts[json.loads(response.read())["model_version"]] += 1
    # Binomial(400, 0.2): sd 8; 4.5 sd wide, so a correct server fails this about once in 150,000 runs.
    assert abs(counts["2"] - n * 0.2) <= 4.5 * math.sqrt(n * 0.2 * 0.8), counts
    assert counts["1"] + counts["2"] == n
    for _ in range(20):
        conn.request("POST", "/v2/models/iris/versions/2/infer", body=json.dumps(infer_body(ROW)))
        response = conn.getresponse()
        assert json.loads(response.read())["model_version"] == "2"
    conn.close()
    srv.stop()
    # Serving the bare name later follows the recorded deployment.
    again = start_server("iris", home=private_home)
    assert wait_until(lambda: any("/v2/models/iris -> iris:1 80%, iris:2 20%" in line for line in again.output))


def test_a_split_server_that_cannot_listen_records_no_deployment(private_home):
    """A recorded deployment holds its versions from deletion: only a server that runs may leave one."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "mlc", "serve", "--split", "iris=iris:1:80,iris:2:20", "--port", str(port)],
            capture_output=True, text=True, timeout=180, env={**os.environ, "MLC_HOME": str(private_home)})
    assert proc.returncode != 0
    assert Registry(private_home).active_deployment("iris") is None
