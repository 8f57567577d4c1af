"""`mlc profile` as a user runs it: exit codes, files, the registry record, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlc.cli.profile import profile_cmd
from mlc.registry import Registry


def test_a_gpu_target_without_a_gpu_provider_refuses_instead_of_measuring_the_cpu(tiny_ref, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    out = tmp_path / "out"
    result = CliRunner().invoke(profile_cmd, [tiny_ref, "--target", "gpu", "--out-dir", str(out)])
    assert result.exit_code != 0
    assert "none of the execution providers CUDAExecutionProvider is available" in " ".join(result.output.split())
    assert not out.exists()  # nothing measured, nothing written


def test_bad_flags_are_usage_errors(tiny_ref, tmp_path, monkeypatch):
    # A flag wrongly accepted starts a profile: its reports go to tmp_path, never the checkout
    # (profile-tiny-1-cpu-2.json/.md once landed at the repository root this way).
    monkeypatch.chdir(tmp_path)
    out = ["--out-dir", str(tmp_path / "out")]
    runner = CliRunner()
    assert runner.invoke(profile_cmd, [tiny_ref, *out, "--duration", "soon"]).exit_code == 2
    url_in_process = ["--url", "http://127.0.0.1:1", "--mode", "inprocess"]
    assert runner.invoke(profile_cmd, [tiny_ref, *out, *url_in_process]).exit_code == 2
    assert runner.invoke(profile_cmd, [tiny_ref, *out, "--slo-p99-ms", "0"]).exit_code == 2
    assert runner.invoke(profile_cmd, [tiny_ref, *out, "--slo-p99-ms", "nan"]).exit_code == 2
    assert runner.invoke(profile_cmd, [tiny_ref, *out, "--rate", "inf"]).exit_code == 2
    # "500ms" once read as 500 seconds (the unit's letters were stripped); 0.5 s is accepted, 100ms too short.
    assert runner.invoke(profile_cmd, [tiny_ref, *out, "--duration", "100ms"]).exit_code == 2
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("profile-*"))  # nothing measured or written


def test_durations_read_with_their_units():
    from mlc.cli.profile import _seconds

    assert [_seconds(t) for t in ("2s", "1.5s", "500ms", "1m", "3", ".5s")] == [2, 1.5, 0.5, 60, 3, 0.5]


def test_a_url_that_does_not_serve_the_model_is_refused_before_measuring(tiny_ref, tmp_path):
    """--url is checked first: a server that answers 404 for the model gets the --model-name hint."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    out = tmp_path / "out"
    runner = CliRunner()
    try:
        result = runner.invoke(profile_cmd, [tiny_ref, "--mode", "http", "--url", url, "--out-dir", str(out)])
    finally:
        server.shutdown()
        server.server_close()
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "answers HTTP 404 for model 'tiny'" in said and "--model-name" in said
    result = runner.invoke(profile_cmd, [tiny_ref, "--mode", "http", "--url", url, "--out-dir", str(out)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "cannot reach a KServe v2 server" in said  # the server is gone now
    assert not out.exists()  # nothing measured, nothing written


@pytest.mark.slow
def test_quick_profile_of_a_tiny_model_writes_its_reports_and_records_them(tiny_ref, tmp_path):
    """cpu-8 on this machine: the figures must be extrapolated from measured 1-core and all-core points.

    A loose SLO: a tight one made the verdict (exit 0: some configuration met it) this machine's load.
    """
    html = tmp_path / "report.html"
    result = CliRunner().invoke(profile_cmd, [
        tiny_ref, "--mode", "inprocess", "--record-inprocess",
        "--target", "cpu-8", "--quick", "--duration", "1s", "--rate", "500", "--slo-p99-ms", "1000",
        "--out-dir", str(tmp_path), "--html", str(html), "--pyinstrument"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "profile-tiny-1-cpu-8.json").read_text())
    assert report["schema"] == "mlc.report/1" and report["kind"] == "profile" and report["target"]["name"] == "cpu-8"
    body = report["body"]
    assert body["search"] == "quick" and 1 <= len(body["configs"]) <= 6
    # "Under a minute" on an idle 2-core machine, as work rather than a stopwatch: at most 4 points of
    # 1 s per configuration, and one side measurement for the extrapolation.
    assert body["point_duration_s"] == 1.0 and all(len(c["points"]) <= 4 for c in body["configs"] + body["scaling"])
    rec = body["recommendation"]
    assert rec["replicas"] >= 1 and rec["cost_per_million"] > 0
    if len(os.sched_getaffinity(0)) < 8:
        assert rec["extrapolated"] and "per-core capacity" in rec["extrapolation"]["method"]
        assert body["scaling"] and body["scaling"][0]["points"][0]["cores_pinned"] == 1
    markdown = (tmp_path / "profile-tiny-1-cpu-8.md").read_text()
    assert "## Recommendation" in markdown and "extrapolated" in markdown
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 4
    assert (tmp_path / "profile-tiny-1-cpu-8-hotpath.html").stat().st_size > 1000
    mv = Registry.open().get(tiny_ref)
    assert mv.metrics.profile is not None and mv.metrics.profile.recommendation is not None
    assert mv.metrics.profile.recommendation.max_batch_size == rec["config"]["max_batch_size"]
    assert "profile-tiny-1-cpu-8.json" in mv.reports


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_still_writes_what_was_measured(tiny_ref, tmp_path):
    """SIGINT mid-sweep: exit 130, the report written with the points measured, no traceback.

    The run pauses once its first point is reported (mlc.testhooks) and the signal comes after
    that, so it lands mid-sweep whatever the machine's load, never after a finished run.
    """
    # SIGINT as a terminal's Ctrl-C delivers it: a shell that ran the tests in the background (nohup,
    # a CI script) starts them with SIGINT ignored, and every child inherits that.
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from mlc.cli.profile import profile_cmd; profile_cmd()")
    env = {**os.environ, "MLC_TEST_PAUSE_AT": "profile-point"}
    proc = subprocess.Popen([sys.executable, "-c", code, tiny_ref, "--mode", "inprocess", "--duration", "1s",
                             "--out-dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    paused = threading.Event()  # set once stderr says the run paused after its first measured point

    def read_progress() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:  # a thread, not select(): select misses lines already buffered
            lines.append(line)
            if "paused at profile-point" in line:
                paused.set()

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    try:
        while not paused.wait(0.1):
            assert proc.poll() is None, "the profile ended without pausing:\n" + "".join(lines)
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    finally:
        if proc.poll() is None:  # never leave a paused run behind
            proc.kill()
            proc.wait()
    reader.join(10)
    err = "".join(lines)
    assert proc.returncode == 130, err
    body = json.loads(Path(tmp_path / "profile-tiny-1-cpu-2.json").read_text())["body"]
    assert body["interrupted"] and len(body["configs"]) == 1 and body["configs"][0]["points"], err
    assert "Traceback" not in err


@pytest.mark.slow
def test_http_mode_measures_any_v2_url_as_it_is_configured(tiny_ref, stub_server, tmp_path):
    result = CliRunner().invoke(profile_cmd, [
        tiny_ref, "--mode", "http", "--url", stub_server, "--duration", "1s", "--slo-p99-ms", "500",
        "--out-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)["body"]
    assert body["mode"] == "http" and body["url"] == stub_server and len(body["configs"]) == 1
    assert "settings of the server at" in body["configs"][0]["note"]
    assert body["recommendation"]["confirmed"] is not None
    point = body["configs"][0]["points"][0]
    assert point["loadgen_processes"] >= 1 and point["loadgen_cpu_peak_pct"] is not None
    mv = Registry.open().get(tiny_ref)
    assert mv.metrics.profile is None  # another server's settings are not mlc serve's defaults
    assert "profile-tiny-1-cpu-2.json" in mv.reports


@pytest.mark.slow
def test_http_mode_starts_mlc_serve_with_the_configurations_layout(tiny_ref):
    """Every setting the HTTP sweep varies reaches the server it starts: batcher, instances, threads."""
    import urllib.request

    from mlc.profile.server import ServerProcess
    from mlc.serve.layout import ServingLayout

    config = ServingLayout.of(max_batch_size=8, max_queue_delay_us=100, instances=2, threads=1)
    with ServerProcess(tiny_ref, config, "cpu-2") as server:
        with urllib.request.urlopen(f"{server.url}/v2/models/tiny/config", timeout=10) as reply:
            model_config = json.loads(reply.read())
        log = server.log_tail()
    assert model_config["max_batch_size"] == 8 and model_config["instance_group"][0]["count"] == 2
    assert "max_queue_delay_us=100 instances=2 threads=1 (from flags" in log
