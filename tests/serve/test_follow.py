"""A running server follows its alias: `mlc serve NAME@ALIAS` swaps to the version the alias moves
to, under load, with no failed request, and each connection switches once and never back.

The poll is driven by SIGHUP (--poll-interval 0), not by the clock."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from pathlib import Path

import numpy as np

from mlc.registry import Registry
from mlc.serve.exposition import prometheus_text
from mlc.serve.metrics import Layout, MetricsBoard

from .conftest import N_FEATURES, infer_body, wait_until

ROW = np.ones((1, N_FEATURES), dtype=np.float32)
CONNECTIONS = 4


class Load:
    """Constant load: one thread per keep-alive connection, each recording (status, model_version) in order."""

    def __init__(self, srv) -> None:
        self.stop = threading.Event()
        self.seen: list[list[tuple[int, str]]] = [[] for _ in range(CONNECTIONS)]
        self.threads = [threading.Thread(target=self._run, args=(srv, i), daemon=True) for i in range(CONNECTIONS)]
        for thread in self.threads:
            thread.start()

    def _run(self, srv, i: int) -> None:
        conn = srv.connection()
        body = json.dumps(infer_body(ROW))
        try:
            while not self.stop.is_set():
                try:
                    conn.request("POST", "/v2/models/iris/infer", body=body)
                    response = conn.getresponse()
                    data = json.loads(response.read())
                    self.seen[i].append((response.status, str(data.get("model_version", data.get("error")))))
                except Exception as exc:  # a refused or dropped connection is an error too
                    self.seen[i].append((0, repr(exc)))
                    conn.close()
                    conn = srv.connection()
        finally:
            conn.close()

    def count(self, version: str) -> list[int]:
        return [sum(1 for _, v in seen if v == version) for seen in self.seen]

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def test_serving_an_alias_swaps_live_when_it_moves_with_no_failed_request(start_server, private_home: Path):
    registry = Registry(private_home)
    registry.set_alias("iris:1", "prod")
    srv = start_server("iris@prod", "--workers", "2", "--poll-interval", "0", home=private_home)
    assert wait_until(lambda: any("(follows iris@prod)" in line for line in srv.output))
    load = Load(srv)
    try:
        assert wait_until(lambda: min(load.count("1")) >= 20, timeout=60), load.seen
        registry.set_alias("iris:2", "prod")
        os.kill(srv.proc.pid, signal.SIGHUP)  # poll now, in every worker
        moved = re.compile(r"worker \d: iris@prod moved to iris:2: /v2/models/iris -> iris:2 100%")
        assert wait_until(lambda: sum(bool(moved.search(line)) for line in srv.output) == 2, timeout=120), \
            "".join(srv.output)
        # Both workers swapped: from here every connection gets iris:2 only.
        assert wait_until(lambda: min(load.count("2")) >= 20, timeout=60), load.count("2")
    finally:
        load.finish()
    for seen in load.seen:
        assert all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200][:5]
        versions = [v for _, v in seen]
        switch = versions.index("2")
        assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}, versions
    # iris:2 has no profile: it serves with the layout iris:1 ran with, and the log says so.
    log = "".join(srv.output)
    assert log.count("loaded and warmed iris:2; its layout: the running layout of iris:1") == 2, log
    _, _, text = srv.request("GET", "/metrics")
    counted = re.search(r'mlc_inference_requests_total\{model="iris",version="2",outcome="success"\} (\d+)',
                        text.decode())
    assert counted and int(counted[1]) >= CONNECTIONS * 20, text.decode()[:2000]
    # Moving back is a move like any other.
    registry.set_alias("iris:1", "prod")
    os.kill(srv.proc.pid, signal.SIGHUP)
    assert wait_until(lambda: "".join(srv.output).count("moved to iris:1") == 2, timeout=120)
    assert srv.json("POST", "/v2/models/iris/infer", infer_body(ROW))[1]["model_version"] == "1"


def test_versions_loaded_while_serving_share_a_metrics_row_across_workers(tmp_path: Path):
    """Workers load new versions in any order; each version counts into one row every worker agrees on."""
    layout = Layout(keys=(("m", 1),), max_batch_size=4, spare=2)
    first, second = MetricsBoard(tmp_path, 0, layout), MetricsBoard(tmp_path, 1, layout)
    first.meter("m", 3).failure(1, 10)  # type: ignore[arg-type]
    second.meter("m", 2).failure(1, 10)  # type: ignore[arg-type]
    second.meter("m", 3).failure(1, 10)  # type: ignore[arg-type]
    text = prometheus_text(first.snapshot(), first.current_layout())
    assert 'mlc_inference_requests_total{model="m",version="3",outcome="client_error"} 2' in text
    assert 'mlc_inference_requests_total{model="m",version="2",outcome="client_error"} 1' in text
    assert first.current_layout().server_row == layout.server_row
    try:
        first.meter("m", 4)
    except Exception as exc:
        assert "restart mlc serve" in str(exc)
    else:
        raise AssertionError("a version beyond the spare rows was metered")
