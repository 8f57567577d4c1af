"""What collecting every request costs `mlc serve`: throughput with --collect-sample 1.0 against none.

    python benchmarks/bench_collect.py [--seconds 5] [--passes 3] [--connections 4]
        -> results/collect.json, results/collect.md

One worker, the same tiny forest, 1-row JSON requests, closed-loop load from wrk (Debian's
`wrk`, one thread, keep-alive) against 127.0.0.1; or Triton's perf_analyzer when wrk is missing
and MLC_PERF_ANALYZER names it (.ci/perf_analyzer.sh prints such a path). Both servers run at
once and the passes alternate between them (none, collect, none, collect, ...), so a change in
the machine's load falls on both. The target (issue 15) is collect >= 90% of none, judged on the
median pass. Before timing, each server's answer is checked against the model's own
predictions; after, the collected Parquet is read back and its rows counted against the
requests answered, beside the drop counter from /metrics (a fast server that dropped its
samples would not be a result). Both servers run with --no-hooks, so only collection differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import Point, Running, _body, _get, _mlc_serve, free_port, machine, same_output, wrk

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.90


def train(home: Path) -> Any:
    """A 5-tree forest on 4 features, registered as `tiny`; the fitted model for the output check."""
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from mlc.registry import Registry
    from mlc.signature import tabular

    x, y = make_classification(n_samples=2000, n_features=4, n_informative=3, n_redundant=0, random_state=0)
    x = x.astype(np.float32)
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0, n_jobs=1).fit(x, y)
    onx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    Registry(home).register("tiny", onx.SerializeToString(), format="onnx", framework="sklearn",
                            signature=tabular(4, task="classification", classes=[0, 1]))
    return model, x


def perf_analyzer(binary: str, port: int, connections: int, seconds: float, label: str) -> Point:
    """perf_analyzer's closed loop at `connections` concurrent requests, 1-row random inputs."""
    out = subprocess.run(
        [binary, "-m", "tiny", "-u", f"127.0.0.1:{port}", "-i", "http", "--concurrency-range", str(connections),
         "--measurement-interval", str(int(seconds * 1000)), "-b", "1"],
        capture_output=True, text=True, timeout=seconds * 10 + 120, check=True).stdout
    rate = float(re.search(r"Throughput: ([\d.]+) infer/sec", out)[1])
    p = {k: float(v) / 1000 for k, v in re.findall(r"p(50|90|99) latency: (\d+) usec", out)}
    return Point(server=label, connections=connections, seconds=seconds, requests_per_s=rate,
                 p50_ms=p.get("50", 0.0), p90_ms=p.get("90", 0.0), p99_ms=p.get("99", 0.0), errors=0)


def metric(port: int, name: str) -> float:
    text = _get(port, "GET", "/metrics")[1].decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found[1]) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    client = "wrk" if shutil.which("wrk") else os.environ.get("MLC_PERF_ANALYZER")
    if not client:
        sys.exit("needs wrk (apt-get install wrk) or MLC_PERF_ANALYZER (.ci/perf_analyzer.sh prints one)")

    work = Path(tempfile.mkdtemp(prefix="mlc-bench-collect-"))
    try:
        home, collected = work / "home", work / "collected"
        model, x = train(home)
        env = {"MLC_HOME": str(home)}
        ports = {"none": free_port(), "collect 1.0": free_port()}
        flags = {"none": (), "collect 1.0": ("--collect", str(collected), "--collect-sample", "1.0")}
        path = "/v2/models/tiny/infer"
        one_row = _body(x[:1])
        servers = {label: Running(_mlc_serve("tiny", ports[label], "--workers", "1", "--no-hooks", *flags[label]),
                                  ports[label], env) for label in ports}
        points: list[Point] = []
        checks: dict[str, bool] = {}
        answered = 0.0
        with servers["none"], servers["collect 1.0"]:
            for label, port in ports.items():
                checks[label] = same_output(port, path, model, x[:64])
            for _ in range(args.passes):
                for label, port in ports.items():
                    if client == "wrk":
                        point = wrk(port, path, one_row, {"Content-Type": "application/json"}, args.connections,
                                    args.seconds, label)
                    else:
                        point = perf_analyzer(client, port, args.connections, args.seconds, label)
                    points.append(point)
                    print(f"{label}: {point.requests_per_s:,.0f} req/s, p99 {point.p99_ms:.2f} ms", flush=True)
            port = ports["collect 1.0"]
            sampled = metric(port, "mlc_collect_requests_sampled_total")
            dropped = metric(port, "mlc_collect_requests_dropped_total")
            answered = sampled
        rows = _collected_rows(collected)  # after SIGTERM: everything queued has been written
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {label: statistics.median(p.requests_per_s for p in points if p.server == label) for label in ports}
    ratio = medians["collect 1.0"] / medians["none"]
    meta = machine()
    meta["load_client"] = ("wrk -t1 (closed loop, keep-alive), 127.0.0.1" if client == "wrk"
                           else f"perf_analyzer ({client}), concurrency {args.connections}")
    data = {"benchmark": "collect", "machine": meta, "same_output": checks, "points": [vars(p) for p in points],
            "median_requests_per_s": medians, "ratio_collect_to_none": ratio, "target_ratio": TARGET,
            "meets_target": ratio >= TARGET, "requests_sampled": answered, "requests_dropped": dropped,
            "rows_written": rows,
            "notes": ["1 worker, --workers 1; 1-row JSON requests to a 5-tree forest (4 features)",
                      f"{args.passes} alternating passes of {args.seconds:g} s at {args.connections} connections",
                      f"load average {meta['loadavg_1m_at_start']:.2f} at the start (the client, both servers "
                      "and any other work share the machine's cores): compare within this run, not with other runs"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "collect.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = ["# Collection cost: mlc serve with --collect-sample 1.0 against no collection", "",
             f"Machine: {meta['cpus']} CPUs ({meta['platform']}), load average at start "
             f"{meta['loadavg_1m_at_start']:.2f}; client: {meta['load_client']}.", "",
             "| server | pass | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
    for i, p in enumerate(points):
        lines.append(f"| {p.server} | {i // 2 + 1} | {p.requests_per_s:,.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} "
                     f"| {p.errors} |")
    lines += ["", f"Median req/s: none {medians['none']:,.0f}, collect {medians['collect 1.0']:,.0f}: "
                  f"**{ratio:.1%}** of none (target ≥ {TARGET:.0%}: {'met' if ratio >= TARGET else 'NOT met'}).",
              f"Same output as the model: {checks}. Collected: {int(answered):,} requests sampled, "
              f"{int(dropped):,} dropped, {rows:,} rows written (1 row each, and 64 for the output check's request).",
              "",
              *[f"- {n}" for n in data["notes"]], ""]
    (RESULTS / "collect.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _collected_rows(directory: Path) -> int:
    import pyarrow.dataset as ds

    if not directory.exists():
        return 0
    return int(ds.dataset(directory, format="parquet", partitioning="hive").count_rows())


if __name__ == "__main__":
    main()
