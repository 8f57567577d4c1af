"""Workers, overload and shutdown: several processes share the port, a full queue answers 503 at
once, SIGTERM lets in-flight requests finish, and a long run of mixed traffic leaves the server
healthy with its memory back near where it started."""

from __future__ import annotations

import http.client
import json
import threading

import numpy as np
import psutil
import pytest

from .conftest import N_FEATURES, infer_body, listening_workers, wait_until

ROWS = np.random.default_rng(5).normal(size=(4, N_FEATURES)).astype(np.float32)


def _post(srv, path: str, body: dict) -> tuple[int, dict]:
    return srv.json("POST", path, body)


def test_workers_share_the_port_and_report_one_set_of_counters(start_server):
    srv = start_server("reg", "--workers", "2")
    workers = listening_workers(srv.proc.pid, srv.port)
    assert len(workers) == 2
    cpu_before = [sum(w.cpu_times()[:2]) for w in workers]
    n = 120
    for _ in range(n):  # a new connection each time, so the kernel spreads them over the workers
        assert _post(srv, "/v2/models/reg/infer", infer_body(ROWS))[0] == 200
    cpu_after = [sum(w.cpu_times()[:2]) for w in workers]
    assert all(after > before for before, after in zip(cpu_before, cpu_after, strict=True))
    # Whichever worker answers, the counters are the sum over both.
    for _ in range(4):
        stats = srv.json("GET", "/v2/models/reg/stats")[1]["model_stats"][0]
        assert stats["inference_stats"]["success"]["count"] == n and stats["inference_count"] == n * len(ROWS)


def test_a_worker_that_dies_is_replaced(start_server):
    srv = start_server("reg", "--workers", "2")

    def listening() -> set[int]:
        return {worker.pid for worker in listening_workers(srv.proc.pid, srv.port)}

    first = listening()
    victim = min(first)
    psutil.Process(victim).kill()
    assert wait_until(lambda: len(listening()) == 2 and victim not in listening(), timeout=60)
    for _ in range(20):
        assert _post(srv, "/v2/models/reg/infer", infer_body(ROWS))[0] == 200


def test_a_full_queue_answers_503_at_once(start_server):
    """The 503 comes while the queue is still full, not once it has room: no clock is needed to tell.

    A batching delay longer than the test keeps the first request (5 of 8 rows) queued until a
    request fills its batch; one that does not fit (4 rows) is refused meanwhile.
    """
    srv = start_server("reg", "--max-batch-size", "8", "--max-queue-rows", "8", "--max-queue-delay-us", "60000000")
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(
        _post(srv, "/v2/models/reg/infer", infer_body(np.zeros((5, N_FEATURES), np.float32)))[0]))
    thread.start()
    assert wait_until(lambda: "mlc_pending_rows{model=\"reg\",version=\"1\"} 5" in srv.request("GET", "/metrics")[2]
                      .decode(), timeout=60)
    status, reply = _post(srv, "/v2/models/reg/infer", infer_body(ROWS))
    assert status == 503 and "queue is full" in reply["error"]
    assert not first  # still queued: the refusal did not wait for room
    assert _post(srv, "/v2/models/reg/infer", infer_body(ROWS[:3]))[0] == 200  # fills the batch: both run
    thread.join(30)
    assert first == [200]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_in_flight_requests_finish(start_server, workers):
    srv = start_server("reg", "--workers", workers, "--max-queue-delay-us", "3000000")
    result: list[tuple[int, dict]] = []
    thread = threading.Thread(target=lambda: result.append(_post(srv, "/v2/models/reg/infer", infer_body(ROWS))))
    thread.start()
    # SIGTERM once the request waits in a batcher for its 3 s delay (a fixed sleep sent it, on a
    # busy machine, before the request had arrived: nothing was in flight, the connection refused).
    assert wait_until(lambda: f"mlc_pending_rows{{model=\"reg\",version=\"1\"}} {len(ROWS)}"
                      in srv.request("GET", "/metrics")[2].decode(), timeout=60)
    assert srv.stop() == 0
    thread.join(10)
    assert result and result[0][0] == 200 and result[0][1]["model_version"] == "1"
    assert any("mlc serve: stopped" in line for line in srv.output)


def _mixed_requests(srv, count: int, seed: int) -> tuple[int, int]:
    """`count` requests on one keep-alive connection, about half of them bad in every way we know."""
    rng = np.random.default_rng(seed)
    good_bin_header = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [4, N_FEATURES],
                                              "parameters": {"binary_data_size": ROWS.nbytes}}]}).encode()
    lying_header = good_bin_header.replace(str(ROWS.nbytes).encode(), str(ROWS.nbytes + 8).encode())
    cases = [
        ("/v2/models/iris/infer", json.dumps(infer_body(ROWS)).encode(), {}),
        ("/v2/models/iris/versions/2/infer", good_bin_header + ROWS.tobytes(),
         {"Inference-Header-Content-Length": str(len(good_bin_header))}),
        ("/v2/models/iris/infer", b"{malformed", {}),
        ("/v2/models/iris/infer", json.dumps(infer_body(ROWS, name="nope")).encode(), {}),
        ("/v2/models/iris/infer", json.dumps(infer_body(ROWS, datatype="INT64")).encode(), {}),
        ("/v2/models/iris/infer", json.dumps(infer_body(ROWS[:, :2])).encode(), {}),
        ("/v2/models/missing/infer", json.dumps(infer_body(ROWS)).encode(), {}),
        ("/v2/models/iris/infer", lying_header + ROWS.tobytes(),
         {"Inference-Header-Content-Length": str(len(lying_header))}),
        ("/v2/models/boom/infer", json.dumps(infer_body(np.array([[50.0, 1.0]], np.float32), name="x")).encode(), {}),
        ("/v2/models/iris/infer", json.dumps(infer_body(np.zeros((3000, N_FEATURES), np.float32))).encode(), {}),
    ]
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    ok = bad = 0
    for i in rng.integers(0, len(cases), size=count):
        path, body, headers = cases[i]
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status == 200:
            ok += 1
        else:
            assert response.status in (400, 404, 500) and json.loads(data)["error"], (path, response.status)
            bad += 1
    conn.close()
    return ok, bad


@pytest.mark.slow
def test_ten_thousand_mixed_requests_leave_the_server_healthy(start_server):
    srv = start_server("iris:1", "iris:2", "boom", "--max-queue-delay-us", "100",
                       env={"MLC_MAX_REQUEST_ROWS": "2000"})
    process = psutil.Process(srv.proc.pid)
    _mixed_requests(srv, 1000, seed=0)  # warm up allocator pools and caches first
    baseline = process.memory_info().rss
    totals = [0, 0]
    lock = threading.Lock()

    def client(seed: int) -> None:
        ok, bad = _mixed_requests(srv, 2500, seed)
        with lock:
            totals[0] += ok
            totals[1] += bad

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert sum(totals) == 10_000 and totals[0] > 1000 and totals[1] > 4000
    assert srv.json("GET", "/v2/health/ready")[0] == 200
    assert _post(srv, "/v2/models/iris/versions/1/infer", infer_body(ROWS))[0] == 200
    grown = process.memory_info().rss - baseline
    assert grown < 64 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 10,000 requests"


def test_a_host_that_is_no_address_says_so():
    from mlc.errors import UsageError
    from mlc.serve.workers import bind

    with pytest.raises(UsageError, match="not an address of this machine") as info:
        bind("no.such.host.invalid", 0, listen=True)
    assert "--host" in info.value.hint


def test_json_mode_prints_one_line_a_script_can_read_the_port_from(mlc_home):
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "mlc", "serve", "iris:2", "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "MLC_HOME": str(mlc_home)})
    try:
        assert proc.stdout is not None
        summary = json.loads(proc.stdout.readline())
        assert summary["versions"][0]["ref"] == "iris:2" and summary["routes"] == {"iris": {"2": 100.0}}
        with urllib.request.urlopen(f"{summary['url']}/v2/health/ready", timeout=10) as reply:
            assert reply.status == 200
    finally:
        proc.terminate()
        proc.wait(60)


def test_json_mode_without_the_grpc_extra_serves_rest(mlc_home):
    """A plain install has no grpcio: `mlc serve --json` answered "needs the 'grpcio' package" without --grpc-port."""
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    code = "import sys; sys.modules['grpc'] = None\nfrom mlc.cli.serve import serve_cmd; serve_cmd()"
    proc = subprocess.Popen([sys.executable, "-c", code, "iris:2", "--port", "0", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "MLC_HOME": str(mlc_home)})
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.poll() is not None else "no line"
        summary = json.loads(line)
        assert summary["grpc"] is None
        with urllib.request.urlopen(f"{summary['url']}/v2/health/ready", timeout=10) as reply:
            assert reply.status == 200
    finally:
        proc.terminate()
        proc.wait(60)
