"""Does `mlc profile` tell the truth? Its reported p99 against a re-measurement, its latency against wrk's.

    python benchmarks/bench_profile.py            # full grid (~3-4 min on 2 cores)
    python benchmarks/bench_profile.py --quick    # hill-climbing search instead of the grid

The model is the optimize suite's random forest (mlc.bench.suite "forest-100":
RandomForestClassifier, 100 trees of depth 10, 30 float32 features, fixed seed), converted by
skl2onnx with ZipMap off and registered into a throw-away registry.

1. Reported p99: `mlc profile` (in-process, target cpu-2) with a tight SLO recommends a
   configuration and reports its p99 at the per-replica rate (the worst p99 of its own
   confirmation runs at that rate, not an interpolation). The recommended configuration is then
   built afresh and held at that rate for REPEATS x REPEAT_S; the re-measured p99 (median of the
   repeats) is set beside the reported one.
2. Outside client: `mlc serve` with the recommended settings is measured at the same light,
   paced load by mlc's http mode (locust, open loop) and by wrk (one connection, paced with
   wrk's delay(); apt-get install wrk), in interleaved rounds. Both p50s are reported: mlc's from the scheduled send
   time (its SLO figure) and from the actual send (what wrk measures). perf_analyzer's pip
   package is a placeholder without the binary on this platform, so wrk is the outside client.

Writes results/profile_bench.{json,md}, and the sample report of step 1 as
results/profile_sample.{json,md,html,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SLO_MS = 5.0  # tight for a scoring core whose p99 sits at 1-5 ms on a shared 2-core machine
RATE = 5000.0
REPEATS, REPEAT_S = 3, 5.0
HTTP_RATE = 100.0  # light: both clients see service time, not queueing
HTTP_S, HTTP_ROUNDS = 4.0, 4
AGREEMENT = 0.15  # the p50s of mlc and wrk must agree within 15%


def forest(home: Path) -> tuple[str, Path]:
    """Train, convert (ZipMap off) and register the suite's forest; its ref and ONNX file."""
    from skl2onnx import to_onnx

    from mlc.bench.suite import FULL
    from mlc.cli.models import register_file

    spec = next(m for m in FULL if m.name == "forest-100")
    model, rows = spec.train()
    path = home / "forest.onnx"
    path.write_bytes(to_onnx(model, rows[:1], options={"zipmap": False}).SerializeToString())
    return register_file(path, "forest", trust=False).ref, path


def remeasure(model_path: Path, rec: Any) -> list[dict[str, float]]:
    """The recommended configuration built afresh, held at the per-replica rate REPEATS times."""
    from mlc.profile.loadgen_inprocess import InProcessLoad
    from mlc.profile.sampling import ProcessSampler
    from mlc.runtime.scorer import RuntimePlan
    from mlc.targets import get_target

    target = get_target("cpu-2")
    load = InProcessLoad(model_path, target, RuntimePlan.default(target), poisson=True, duration_s=REPEAT_S,
                         warmup_s=0.5, slo_ms=SLO_MS, seed=1000)
    runs = []
    with ProcessSampler(load.serving_pids) as sampler, load.open(rec.measured_config, sampler) as bench:
        for _ in range(REPEATS):
            (p,) = bench.ladder([rec.per_replica_rps], stop_on_fail=False)
            runs.append({"throughput_rps": p.throughput_rps, "p50_ms": p.p50_ms, "p99_ms": p.p99_ms,
                         "errors": p.errors})
    return runs


def wrk_p50(url: str, body: str, rate: float, seconds: float, scratch: Path, cores: list[int]) -> dict[str, float]:
    """wrk with one connection, paced by delay() to about `rate`, measuring from each actual send."""
    script = scratch / "infer.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"function delay() return {1000.0 / rate:.3f} end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("p50_us=%d\\np99_us=%d\\nrequests=%d\\nerrors=%d\\n", latency:percentile(50),\n'
        "    latency:percentile(99), summary.requests, summary.errors.status + summary.errors.connect))\n"
        "end\n")
    out = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds:.0f}s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60, check=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, cores) if cores else None).stdout
    values = dict(line.split("=") for line in out.splitlines() if "=" in line and line.split("=")[0].isidentifier())
    return {"p50_ms": int(values["p50_us"]) / 1e3, "p99_ms": int(values["p99_us"]) / 1e3,
            "throughput_rps": int(values["requests"]) / seconds, "errors": int(values["errors"])}


def http_agreement(ref: str, rec: Any, scratch: Path) -> dict[str, Any]:
    """mlc's http mode and wrk on one `mlc serve` with the recommended settings, interleaved.

    The machine's own noise moves a p50 by tens of percent between runs a minute apart, so the
    two clients take turns for HTTP_ROUNDS short rounds (alternating who goes first) and the
    medians of their p50s are compared. The server is pinned to the first core and both clients
    to the others, so neither client's CPU use slows the server it measures.
    """
    from mlc.profile.affinity import usable_cores
    from mlc.profile.loadgen_http import Endpoint, HttpLoad
    from mlc.profile.sampling import ProcessSampler

    endpoint = Endpoint("forest", "X", "FP32", (30,))
    load = HttpLoad(endpoint, ref=ref, serve_target="cpu-2", url=None, poisson=False, duration_s=HTTP_S,
                    warmup_s=0.5, slo_ms=1000.0, workdir=scratch)
    body = endpoint.bodies(1, seed=0)[0]
    outside, inside = [], []
    server_cores, client_cores = usable_cores()[:1], usable_cores()[1:]
    with ProcessSampler(load.serving_pids) as sampler, \
            load.open(rec.measured_config, sampler, cores=server_cores if client_cores else None) as bench:
        url = bench.url + endpoint.path
        rate = wrk_p50(url, body, HTTP_RATE, HTTP_S, scratch, client_cores)["throughput_rps"]  # also warms the server
        for i in range(HTTP_ROUNDS):
            turns = ("wrk", "mlc") if i % 2 == 0 else ("mlc", "wrk")
            for who in turns:
                if who == "wrk":
                    outside.append(wrk_p50(url, body, HTTP_RATE, HTTP_S, scratch, client_cores))
                else:
                    (p,) = bench.ladder([rate], stop_on_fail=False)  # the load wrk offers
                    inside.append({"p50_ms_from_schedule": p.p50_ms, "p50_ms_from_send": p.service_p50_ms,
                                   "p99_ms": p.p99_ms, "throughput_rps": p.throughput_rps, "errors": p.errors,
                                   "send_lag_p50_ms": p.send_lag_p50_ms})
    wrk = {key: statistics.median(r[key] for r in outside) for key in outside[0]}
    mlc = {key: statistics.median(r[key] for r in inside) for key in inside[0]}
    ratio_sent = mlc["p50_ms_from_send"] / wrk["p50_ms"]
    return {
        "rate_rps": round(rate, 1), "rounds": HTTP_ROUNDS, "round_s": HTTP_S, "wrk": wrk, "mlc": mlc,
        "wrk_rounds": outside, "mlc_rounds": inside,
        "ratio_from_send": round(ratio_sent, 3),
        "ratio_from_schedule": round(mlc["p50_ms_from_schedule"] / wrk["p50_ms"], 3),
        "agree_within": AGREEMENT, "agree": abs(ratio_sent - 1) <= AGREEMENT,
    }


def write_sample(outcome: Any) -> None:
    from mlc.profile.plots import grid_png

    files = outcome.files
    shutil.copyfile(files["json"], RESULTS / "profile_sample.json")
    shutil.copyfile(files["markdown"], RESULTS / "profile_sample.md")
    (RESULTS / "profile_sample.png").write_bytes(grid_png(outcome.report))


def markdown(body: dict[str, Any]) -> str:
    p = body["prediction"]
    repeats = ", ".join(f"{r['p99_ms']:.2f}" for r in p["repeats"])
    lines = [
        "# mlc profile: reported p99 and outside-client agreement", "",
        f"Model: {body['model']}. Target cpu-2, SLO p99 <= {SLO_MS:g} ms, rate {RATE:g}/s, search {body['search']}.",
        "", "## Predicted vs measured p99 (in-process)", "",
        "| configuration | per-replica rate/s | reported p99 ms | re-measured p99 ms (median of repeats) | "
        "repeats p99 ms | re-measured / reported |", "|---|---:|---:|---:|---|---:|",
        f"| {p['configuration']} | {p['per_replica_rps']:,.0f} | {p['predicted_p99_ms']:.2f} | "
        f"{p['measured_p99_ms']:.2f} | {repeats} | {p['ratio']:.2f} |",
        "", f"Measured p99 meets the SLO: {'yes' if p['meets_slo'] else 'no'}.",
    ]
    h = body.get("http")
    if h:
        lines += [
            "", "## mlc http mode vs wrk on the same `mlc serve` (p50)", "",
            f"Load: {h['rate_rps']:.0f} requests/s (wrk: one connection paced by delay(); mlc: open loop, constant "
            f"gaps, the rate wrk achieved); {h['rounds']} interleaved rounds of {h['round_s']:g} s each, medians.", "",
            "| client | p50 ms | p99 ms | throughput/s | errors |", "|---|---:|---:|---:|---:|",
            f"| wrk (from send) | {h['wrk']['p50_ms']:.3f} | {h['wrk']['p99_ms']:.3f} | "
            f"{h['wrk']['throughput_rps']:.0f} | {h['wrk']['errors']:.0f} |",
            f"| mlc (from send) | {h['mlc']['p50_ms_from_send']:.3f} | — | {h['mlc']['throughput_rps']:.0f} | "
            f"{h['mlc']['errors']:.0f} |",
            f"| mlc (from schedule) | {h['mlc']['p50_ms_from_schedule']:.3f} | {h['mlc']['p99_ms']:.3f} | — | — |",
            "", f"mlc / wrk p50, both from the send: {h['ratio_from_send']:.2f} "
            f"({'within' if h['agree'] else 'NOT within'} {AGREEMENT:.0%}); from mlc's schedule: "
            f"{h['ratio_from_schedule']:.2f} (the difference is the generator's own send lag, median "
            f"{h['mlc']['send_lag_p50_ms']:.3f} ms).",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="hill-climb instead of the full grid")
    parser.add_argument("--no-http", action="store_true", help="skip the mlc-vs-wrk comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlc-bench-profile-") as tmp:
        scratch = Path(tmp)
        os.environ["MLC_HOME"] = str(scratch / "home")
        from mlc.profile import ProfileOptions, profile
        from mlc.report.envelope import envelope

        ref, model_path = forest(scratch)
        outcome = profile(ref, "cpu-2", ProfileOptions(
            slo_p99_ms=SLO_MS, rate_rps=RATE, quick=args.quick, out_dir=scratch,
            html=RESULTS / "profile_sample.html"), progress=lambda m: print("…", m, file=sys.stderr))
        write_sample(outcome)
        rec = outcome.result.recommendation
        if rec is None:
            print("no configuration met the SLO; nothing to check", file=sys.stderr)
            return 1
        repeats = remeasure(model_path, rec)
        measured = statistics.median(r["p99_ms"] for r in repeats)
        body: dict[str, Any] = {
            "model": "forest-100 (RandomForestClassifier, 100 trees of depth 10, 30 features), skl2onnx, no ZipMap",
            "search": outcome.result.search,
            "prediction": {"configuration": rec.measured_config.label, "per_replica_rps": rec.per_replica_rps,
                           "predicted_p99_ms": rec.predicted_p99_ms, "measured_p99_ms": measured,
                           "ratio": round(measured / rec.predicted_p99_ms, 3), "meets_slo": measured <= SLO_MS,
                           "repeats": repeats},
        }
        if not args.no_http:
            if shutil.which("wrk") is None:
                print("wrk is not installed (apt-get install wrk): skipping the outside-client check", file=sys.stderr)
            else:
                body["http"] = http_agreement(ref, rec, scratch)
    report = envelope("profile-bench", body)
    (RESULTS / "profile_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "profile_bench.md").write_text(markdown(body))
    print(markdown(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
