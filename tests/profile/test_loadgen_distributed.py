"""locust in distributed mode: a master and worker processes, one started by mlc and one as a user
starts a worker on another host (its own folder and environment, the locustfile fetched from the
master), their timings merged and the hosts named in the report's notes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from mlc.errors import UsageError
from mlc.profile.loadgen_http import Distributed, Endpoint, HttpLoad
from mlc.profile.sampling import ProcessSampler
from mlc.serve.layout import ServingLayout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_master_and_workers_as_processes_share_the_load_and_name_their_hosts(stub_server, tmp_path):
    import mlc.profile.loadgen_http as loadgen_http

    port = _free_port()
    dist = Distributed.parse(f"127.0.0.1:{port}", local_workers=1, remote_workers=1)
    elsewhere = tmp_path / "other-host"
    elsewhere.mkdir()
    # The "remote" worker: nothing of the run's configuration in its environment or folder.
    env = {k: v for k, v in os.environ.items() if k != "MLC_PROFILE_LOCUST"}
    remote = subprocess.Popen([sys.executable, "-m", "locust", "-f", "-", "--worker", "--master-host", "127.0.0.1",
                               "--master-port", str(port)], cwd=elsewhere, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    runs = []
    run_locust = loadgen_http.HttpBench._run_locust
    load = HttpLoad(Endpoint("tiny", "X", "FP32", (4,)), ref="tiny:1", serve_target="cpu-2", url=stub_server,
                    poisson=True, duration_s=1.0, warmup_s=0.2, slo_ms=200, workdir=tmp_path / "work",
                    distributed=dist)
    (tmp_path / "work").mkdir()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(loadgen_http.HttpBench, "_run_locust", lambda *a: runs.append(run_locust(*a)) or runs[-1])
            with ProcessSampler(load.serving_pids) as sampler, load.open(ServingLayout.of(), sampler) as bench:
                (p,) = bench.ladder([60.0], stop_on_fail=False)
        remote.wait(60)  # the master told it to quit
    finally:
        if remote.poll() is None:
            remote.kill()
            remote.wait()
    out = remote.stdout.read().decode(errors="replace") if remote.stdout else ""
    assert p.loadgen_processes == 2 and not p.loadgen_limited, out
    (run,) = runs
    assert len(run.records) == 2 and run.hosts == {socket.gethostname(): 2}
    first, second = run.records  # each worker drew its own half of the arrivals
    assert first["scheduled"].size != second["scheduled"].size or (first["scheduled"] != second["scheduled"]).any()
    assert p.sent > 30 and p.errors == 0  # both halves merged: ~48 requests in the 0.8 s window
    assert not list(elsewhere.glob("*.npz"))  # the remote worker's timings came back by message
    (note,) = [n for n in bench.notes if "distributed mode" in n]
    assert f"2 worker process(es) sent requests (2 on {socket.gethostname()})" in note and f":{port}" in note


def test_master_address_and_worker_counts_are_checked():
    assert Distributed.parse(None, 2) == Distributed("127.0.0.1", 5557, 2, 0)
    assert Distributed.parse("0.0.0.0:6000", 1, 3).connect_host == "127.0.0.1"
    assert Distributed.parse("10.0.0.5", 0, 2).port == 5557
    with pytest.raises(UsageError, match="the port is not a number"):
        Distributed.parse("host:x", 1)
    with pytest.raises(UsageError, match="at least one worker"):
        Distributed.parse("host:1", 0, 0)


def test_distributed_locust_is_refused_for_the_in_process_mode():
    from mlc.profile import ProfileOptions

    with pytest.raises(UsageError, match="drives HTTP load"):
        ProfileOptions(mode="inprocess", locust=Distributed()).check()
    ProfileOptions(mode="http", locust=Distributed()).check()
