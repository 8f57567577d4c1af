"""Does `mlc profile` size a deployment that holds? Its planned rate re-measured by a client mlc does not contain.

    MLC_PERF_ANALYZER=$(.ci/perf_analyzer.sh) python benchmarks/bench_profile.py [--quick] [--slo-p99-ms 20]

The model is the full suite's random forest ("forest-100": RandomForestClassifier, 100 trees of
depth 10, 30 float32 features, fixed seed), converted by skl2onnx with ZipMap off and registered
into a throw-away registry.

1. `mlc profile --mode http` (its default: `mlc serve` driven by locust) on target cpu-2 plans a
   per-replica rate (capacity less headroom) and confirms it (3 runs at that rate, served afresh).
2. `mlc serve` is started afresh with the recommended layout and Triton's perf_analyzer (the binary
   `.ci/perf_analyzer.sh` prepares; its path in MLC_PERF_ANALYZER) drives it at the planned rate,
   constant request rate, binary-free JSON over HTTP, for REPEATS measurement windows.
3. Predicted (the profile's confirmation runs) and measured (perf_analyzer) p50, p99 and
   throughput are set side by side. Exit 1 when the measured p99 misses the SLO or differs from
   the predicted p99 by more than 25%; exit 2 when the profile itself recommended nothing.

Writes results/profile_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
P99_AGREEMENT = 0.25  # measured p99 within 25% of the predicted one
REPEATS = 3
WINDOW_MS = 4000


def forest(home: Path) -> str:
    """Train, convert (ZipMap off) and register the suite's forest; its ref."""
    from skl2onnx import to_onnx

    from mlc.bench.suite import FULL
    from mlc.registry import Registry

    spec = next(m for m in FULL if m.name == "forest-100")
    model, rows = spec.train()
    path = home / "forest.onnx"
    path.write_bytes(to_onnx(model, rows[:1], options={"zipmap": False}).SerializeToString())
    return Registry.open().register_file(path, "forest").ref


def perf_analyzer(binary: str, url: str, rate: float, scratch: Path) -> dict[str, float]:
    """One perf_analyzer run at a constant request rate, latencies in ms.

    Its stability rule (the last 3 windows within some percent) is effectively off (999%): on a
    shared machine it never settles, and the verdict here is the p99 it measured, not its stability.
    """
    out = scratch / "pa.csv"
    cmd = [binary, "-m", "forest", "-u", url.removeprefix("http://"), "-i", "http", "-b", "1",
           "--request-rate-range", f"{rate:.0f}", "--request-distribution", "constant",
           "--measurement-interval", str(WINDOW_MS), "--percentile", "99", "--stability-percentage", "999",
           "--max-trials", str(REPEATS), "-f", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"perf_analyzer failed ({done.returncode}): {done.stdout[-800:]} {done.stderr[-800:]}")
    with out.open() as handle:
        row = next(csv.DictReader(handle))
    return {"p50_ms": float(row["p50 latency"]) / 1e3, "p99_ms": float(row["p99 latency"]) / 1e3,
            "throughput_rps": float(row["Inferences/Second"])}


def markdown(body: dict[str, Any]) -> str:
    p, m = body["predicted"], body["measured"]
    return "\n".join([
        "# mlc profile (http mode) vs perf_analyzer at the planned rate", "",
        f"Model: {body['model']}. Target cpu-2, SLO p99 <= {body['slo_p99_ms']:g} ms, search {body['search']}.",
        f"Recommended layout: {body['layout']}, planned {body['planned_rps']:,.0f} req/s per replica "
        f"(capacity {body['capacity_rps']:,.0f}/s{' at least' if body['at_least'] else ''}, confirmed: "
        f"{body['confirmed']}).", "",
        "| | p50 ms | p99 ms | throughput/s |", "|---|---:|---:|---:|",
        "| predicted (mlc profile: p99 the worst of its 3 confirmation runs, p50 its sweep point nearest the "
        f"planned rate) | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | "
        f"{p['throughput_rps']:,.0f} |",
        f"| measured (perf_analyzer, constant rate, served afresh) | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
        f"{m['throughput_rps']:,.0f} |", "",
        f"p99 measured / predicted: {body['p99_ratio']:.2f} (allowed 1 ± {P99_AGREEMENT:.0%}); SLO met: "
        f"{'yes' if body['meets_slo'] else 'NO'}. Verdict: {'PASS' if body['passed'] else 'FAIL'}.", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="hill-climb instead of the full grid")
    parser.add_argument("--slo-p99-ms", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per load point of the profile")
    args = parser.parse_args()
    binary = os.environ.get("MLC_PERF_ANALYZER")
    if not binary or not Path(binary).exists():
        print("set MLC_PERF_ANALYZER to perf_analyzer's path: MLC_PERF_ANALYZER=$(.ci/perf_analyzer.sh)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mlc-bench-profile-") as tmp:
        scratch = Path(tmp)
        os.environ["MLC_HOME"] = str(scratch / "home")
        from mlc.profile import ProfileOptions, profile
        from mlc.profile.server import ServerProcess
        from mlc.report.envelope import envelope

        ref = forest(scratch)
        outcome = profile(ref, "cpu-2", ProfileOptions(
            mode="http", slo_p99_ms=args.slo_p99_ms, quick=args.quick, duration_s=args.duration, out_dir=scratch),
            progress=lambda m: print("…", m, file=sys.stderr))
        rec = outcome.result.recommendation
        if rec is None:
            print("the profile recommended nothing; nothing to re-measure", file=sys.stderr)
            return 2
        chosen = next(c for c in outcome.result.configs if c.config == rec.measured_config)
        near = min((p for p in chosen.points if p.meets_slo),
                   key=lambda p: abs(p.throughput_rps - rec.measured_rate_rps))
        predicted = {"p50_ms": near.p50_ms, "p99_ms": rec.predicted_p99_ms, "throughput_rps": rec.measured_rate_rps}
        with ServerProcess(ref, rec.measured_config, "cpu-2") as server:
            measured = perf_analyzer(binary, server.url, rec.measured_rate_rps, scratch)
    ratio = measured["p99_ms"] / predicted["p99_ms"]
    meets = measured["p99_ms"] <= args.slo_p99_ms
    body: dict[str, Any] = {
        "model": "forest-100 (RandomForestClassifier, 100 trees of depth 10, 30 features), skl2onnx, no ZipMap",
        "search": outcome.result.search, "slo_p99_ms": args.slo_p99_ms, "layout": rec.measured_config.label,
        "planned_rps": rec.measured_rate_rps, "capacity_rps": rec.capacity_rps, "at_least": rec.at_least,
        "confirmed": rec.confirmed, "predicted": predicted, "measured": measured, "p99_ratio": round(ratio, 3),
        "meets_slo": meets, "passed": meets and abs(ratio - 1) <= P99_AGREEMENT,
        "headline": outcome.result.headline,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profile_bench.json").write_text(json.dumps(envelope("profile-bench", body), indent=2) + "\n")
    (RESULTS / "profile_bench.md").write_text(markdown(body))
    print(markdown(body))
    return 0 if body["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
