"""The locust load generator against a v2 server, and the rule that mlc never imports locust itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mlc.profile.loadgen_http import Endpoint, HttpLoad
from mlc.profile.results import ConfigResult
from mlc.profile.sampling import ProcessSampler
from mlc.serve.layout import ServingLayout


def test_importing_the_profiler_imports_neither_locust_nor_gevent():
    code = ("import sys, mlc.profile, mlc.profile.loadgen_http, mlc.profile.report, mlc.cli.profile\n"
            "bad = [m for m in ('locust', 'gevent') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_locust_measures_a_v2_server_open_loop(stub_server, tmp_path):
    """Every scheduled request is sent and answered, and timed from its schedule.

    Whole-second stages: a stage's timings are shifted by its start, and a success flag shifted
    by 1 once read as a failure (stage 2 of every ladder counted no answer). Nothing here judges
    how fast the answers came (an SLO, the rate answered in the window): on a busy machine that
    is the machine's load; the stop-on-miss rule is off for the same reason.
    """
    load = HttpLoad(Endpoint("tiny", "X", "FP32", (4,)), ref="tiny:1", serve_target="cpu-2", url=stub_server,
                    poisson=True, duration_s=1.0, warmup_s=0.2, slo_ms=200, workdir=tmp_path)
    with ProcessSampler(load.serving_pids) as sampler, load.open(ServingLayout.of(), sampler) as bench:
        assert bench.probe_rps() > 0
        points = bench.ladder([40.0, 80.0, 120.0], stop_on_fail=False)
    assert [p.offered_rps for p in points] == [40.0, 80.0, 120.0]
    for p in points:
        assert p.errors == 0 and p.ok == p.sent > 0 and p.loadgen_processes >= 1
        assert p.service_p50_ms >= 1.0  # the stub answers after 1 ms
        assert p.p50_ms >= p.service_p50_ms - 0.5  # from the schedule: never less than from the send
        assert p.loadgen_cpu_peak_pct is not None
    assert p.cpu_mean_pct is not None  # the local server behind --url was found and sampled
    assert not [n for n in bench.notes if "CSV" in n]  # locust's own CSV agrees with the raw timings


@pytest.mark.parametrize("poisson", [True, False])
def test_a_saturated_generator_is_upgraded_to_distributed_locust_and_flagged(stub_server, tmp_path, monkeypatch,
                                                                             poisson):
    """Pretend every locust process is saturated: the ladder is re-run with master + 2 workers, then marked."""
    import mlc.profile.loadgen_http as loadgen_http

    monkeypatch.setattr(loadgen_http, "_BUSY_PCT", -1.0)
    runs = []
    run_locust = loadgen_http.HttpBench._run_locust
    monkeypatch.setattr(loadgen_http.HttpBench, "_run_locust", lambda *a: runs.append(run_locust(*a)) or runs[-1])
    load = HttpLoad(Endpoint("tiny", "X", "FP32", (4,)), ref="tiny:1", serve_target="cpu-2", url=stub_server,
                    poisson=poisson, duration_s=1.0, warmup_s=0.2, slo_ms=200, max_processes=2, workdir=tmp_path)
    with ProcessSampler(load.serving_pids) as sampler, load.open(ServingLayout.of(), sampler) as bench:
        (p,) = bench.ladder([60.0])
    assert p.loadgen_processes == 2 and p.loadgen_limited
    first, second = runs[-1].records  # one file per worker; the master sends nothing
    if poisson:  # each worker draws its own half of the arrivals (forked workers once shared one schedule)
        assert first["scheduled"].size != second["scheduled"].size or (first["scheduled"] != second["scheduled"]).any()
    else:  # constant gaps, staggered: together one request every 1/60 s, not two at once every 1/30 s
        starts = sorted(float(r["scheduled"][0]) for r in (first, second))
        assert starts == pytest.approx([0.0, 1 / 60])
    # Both workers' timings were merged: 60/s for the 0.8 s window is ~48 requests, a worker's half ~24.
    assert p.sent > 30 and p.errors == 0
    assert any("re-measured with 2" in n for n in bench.notes) and any("still saturated" in n for n in bench.notes)
    result = ConfigResult(ServingLayout.of(), [p])
    assert result.capacity_rps == 0  # a generator-limited point is never the server's capacity


def test_ctrl_c_mid_ladder_keeps_the_finished_stages_and_no_stage_that_never_ran(stub_server, tmp_path,
                                                                                monkeypatch):
    """Ctrl-C halfway through stage 4 of 8: stages 1-3 are kept, the 4th is dropped, later ones never existed.

    The interrupt lands where the test says, whatever the machine's load: locust pauses halfway
    through stage 4 (mlc.testhooks) and only then do mlc and locust get their SIGINT.
    """
    import mlc.profile.loadgen_http as loadgen_http

    started: list[subprocess.Popen] = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    paused, finished = tmp_path / "paused", threading.Event()
    monkeypatch.setenv("MLC_TEST_PAUSE_AT", "locust-stage-4")
    monkeypatch.setenv("MLC_TEST_PAUSED_FILE", str(paused))
    monkeypatch.setattr(loadgen_http.subprocess, "Popen", Recorded)
    load = HttpLoad(Endpoint("tiny", "X", "FP32", (4,)), ref="tiny:1", serve_target="cpu-2", url=stub_server,
                    poisson=True, duration_s=1.0, warmup_s=0.2, slo_ms=200, workdir=tmp_path)

    def ctrl_c() -> None:
        while not paused.exists():
            if finished.is_set():
                return  # the ladder ended without pausing: the assertions below say so
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # mlc first: then it waits for locust to write what it measured
        while not load.stop.is_set() and not finished.is_set():
            time.sleep(0.01)
        started[0].send_signal(signal.SIGINT)

    # SIGINT as a terminal's Ctrl-C delivers it, here and in locust: a shell that ran the tests in the
    # background (nohup, a CI script) starts them with SIGINT ignored, and a child inherits that.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=ctrl_c, daemon=True).start()
    try:
        with ProcessSampler(load.serving_pids) as sampler, load.open(ServingLayout.of(), sampler) as bench:
            points = bench.ladder([40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0], stop_on_fail=False)
    finally:
        finished.set()
        signal.signal(signal.SIGINT, previous)
    assert paused.read_text() == "locust-stage-4" and load.stop.is_set()
    # Before, every stage was written out, unsent slots as failures: seven points, the later ones all
    # errors; and slots taken ahead of their time but never sent failed the stage Ctrl-C ended.
    assert [p.offered_rps for p in points] == [40.0, 50.0, 60.0]
    assert all(p.errors == 0 and p.ok == p.sent for p in points)
