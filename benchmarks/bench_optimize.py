"""How much faster is what `mlc optimize` picks than the model's own predict and than a plain conversion?

    python benchmarks/bench_optimize.py           # the full suite -> results/optimize.json, results/optimize.md
    python benchmarks/bench_optimize.py --quick   # fewer training rows and repeats, same models

The suite is mlc.bench.suite.FULL (one definition for `mlc bench` and this script): trained
with fixed seeds on float32 features. Everything is timed with ONE thread (native predict via
n_jobs=1 and threadpoolctl, ONNX Runtime sessions, the tree kernel), on a one-core target, so
the figures compare engines and not thread counts on a shared machine. Per model and batch size
(1, 32, 1024), interleaved in one process (mlc.bench.runner):
- native: the framework's predict_proba (predict for regressors), the parity reference;
- plain: the converters' defaults (skl2onnx/onnxmltools, ZipMap included) in an ORT session with
  default options except one thread: what a user gets without mlc;
- mlc: the version `mlc optimize` registered, served by the Scorer with its runtime plan.
Parity is checked beside every timing. The JSON is a bench report (`mlc report compare` reads it).
Targets: mlc at no batch size slower than the faster of native and plain; geometric-mean speed-up
over native >= 30x at batch 1 and >= 3x at batch 1024.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
BATCH_SIZES = (1, 32, 1024)
TARGETS = {1: 30.0, 1024: 3.0}  # geometric-mean speed-up over native


def one_core_target() -> Any:
    from mlc.targets import get_target

    base = get_target("cpu-2")
    return replace(base, name="cpu-1", description="one core of the benchmark machine", cores=1,
                   batch_sizes=BATCH_SIZES)


def single_threaded(estimator: Any) -> Any:
    """n_jobs=1 wherever the estimator (or a pipeline step) has it."""
    params = estimator.get_params()
    for key in params:
        if key == "n_jobs" or key.endswith("__n_jobs"):
            estimator.set_params(**{key: 1})
    return estimator


# ---- the plain conversion ------------------------------------------------------------------


def plain_onnx(estimator: Any, x: np.ndarray) -> bytes:
    """The converters' defaults: no options, whatever opset they pick (onnxmltools: its highest)."""
    module = type(estimator).__module__
    if module.startswith("xgboost") or module.startswith("lightgbm"):
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        from mlc.convert.xgboost import onnxmltools_opset

        convert = convert_xgboost if module.startswith("xgboost") else convert_lightgbm
        model = convert(estimator, initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                        target_opset=onnxmltools_opset())
    else:
        from skl2onnx import to_onnx

        model = to_onnx(estimator, x[:1])
    return model.SerializeToString()


def plain_variant(onnx_bytes: bytes, reference_names: list[str]) -> Any:
    """ORT defaults with one thread; outputs renamed (and ZipMap dicts unpacked) for parity only."""
    import onnxruntime as ort

    from mlc.bench.variants import Variant

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name

    def call(x: np.ndarray) -> list[Any]:
        return session.run(None, {feed: x})

    def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
        values = [_unzip(v) for v in call(x)]
        return dict(zip(reference_names, values, strict=False))

    return Variant("plain", "converter defaults (ZipMap on classifiers), ORT defaults, 1 thread", call, outputs)


def _unzip(value: Any) -> np.ndarray:
    """A ZipMap output (a list of {class: probability}) as an (n, classes) array."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = list(value[0])
        return np.array([[row[k] for k in keys] for row in value], dtype=np.float64)
    return np.asarray(value)


# ---- one model -----------------------------------------------------------------------------


def prepare_case(suite_model: Any, workdir: Path, target: Any, say: Any) -> Any:
    """Train, optimize into a scratch registry, and set the three variants side by side."""
    import joblib

    from mlc.bench.runner import Case
    from mlc.bench.variants import native_variant, scorer_variant
    from mlc.convert import native
    from mlc.loading import load_model
    from mlc.optimize import optimize
    from mlc.registry import Registry
    from mlc.runtime.scorer import Scorer

    started = time.perf_counter()
    estimator, rows = suite_model.train()
    single_threaded(estimator)
    path = workdir / f"{suite_model.name}.joblib"
    joblib.dump(estimator, path)
    loaded = load_model(path)
    registry = Registry(workdir / "registry")
    result = optimize(loaded, name=suite_model.name, target=target, data=rows, batch_sizes=BATCH_SIZES,
                      registry=registry, progress=lambda m: say(f"  {m}"))
    served = registry.get(str(result.winner))
    scorer = Scorer.from_registry(served.ref, target, registry=registry)
    scorer.warmup()
    reference = native(loaded)
    names = list(reference.outputs(rows[:2]))
    lossy = served.source.lossy
    variants = [native_variant(reference), plain_variant(plain_onnx(estimator, rows), names),
                scorer_variant(scorer, f"{served.ref}: {result.plan.describe()}", lossy=lossy)]
    return Case(suite_model.name, suite_model.description, rows, variants, real_data=True,
                info={"winner": result.plan.describe(), "chain": [s.name for s in served.source.chain],
                      "runtime": served.source.runtime.to_dict() if served.source.runtime else None,
                      "optimize_s": round(time.perf_counter() - started, 1)})


# ---- summary -------------------------------------------------------------------------------


def _median(entry: dict[str, Any], variant: str, batch: int) -> dict[str, Any]:
    return next(t for t in entry["timings"] if t["variant"] == variant and t["batch_size"] == batch)


def summarize(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows, speedups = [], {b: [] for b in BATCH_SIZES}
    for name, entry in models.items():
        if entry.get("status") != "ok":
            rows.append({"model": name, "status": entry.get("status"), "reason": entry.get("reason")})
            continue
        for batch in BATCH_SIZES:
            native, plain, mlc = (_median(entry, v, batch) for v in ("native", "plain", "mlc"))
            speedup = native["median"] / mlc["median"]
            speedups[batch].append(speedup)
            best_other = min(native["median"], plain["median"])
            rows.append({
                "model": name, "batch_size": batch, "status": "ok",
                "native_us": native["median"], "plain_us": plain["median"], "mlc_us": mlc["median"],
                "mlc_engine": mlc["engine"], "speedup_vs_native": round(speedup, 2),
                "speedup_vs_plain": round(plain["median"] / mlc["median"], 2),
                "not_slower": mlc["median"] <= best_other,
                "mlc_parity": mlc["parity"], "plain_parity": plain["parity"],
            })
    geomean = {str(b): round(math.exp(sum(map(math.log, v)) / len(v)), 2) for b, v in speedups.items() if v}
    ok_rows = [r for r in rows if r["status"] == "ok"]
    return {
        "rows": rows,
        "geomean_speedup_vs_native": geomean,
        "targets": {
            **{f"geomean_b{b}>={t:g}x": geomean.get(str(b), 0) >= t for b, t in TARGETS.items()},
            "never_slower_than_native_or_plain": all(r["not_slower"] for r in ok_rows),
            "all_parity_ok": all(r["mlc_parity"]["match"] for r in ok_rows),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    body, summary = report["body"], report["body"]["summary"]
    hw = report["hardware"]
    lines = [
        f"# mlc optimize benchmark ({body['suite']})", "",
        f"{hw['cpu_model']}, {hw['usable_cores']} usable cores (shared); everything single-threaded; "
        f"medians of {body['settings']['repeats']} interleaved repeats; parity on the held-out rows.", "",
        "| model | batch | native µs | plain µs | mlc µs | mlc engine | ×native | ×plain | mlc parity |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | – | {r['status']}: {r['reason']} | | | | | | |")
            continue
        p = r["mlc_parity"]
        parity = f"{'ok' if p['match'] else 'MISMATCH'} ({p['tolerance']}, max err {p['max_rel_err']:.1e})"
        flag = "" if r["not_slower"] else " ⚠"
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['native_us']:,.1f} | {r['plain_us']:,.1f} | "
                     f"{r['mlc_us']:,.1f}{flag} | {r['mlc_engine']} | {r['speedup_vs_native']:.1f} | "
                     f"{r['speedup_vs_plain']:.2f} | {parity} |")
    lines += ["", "Winners:", ""]
    lines += [f"- {name}: {m.get('winner')}" for name, m in body["models"].items() if m.get("status") == "ok"]
    lines += ["", "Geometric-mean speed-up over native: "
              + ", ".join(f"batch {b}: {v:.1f}×" for b, v in summary["geomean_speedup_vs_native"].items()), "",
              "Targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in summary["targets"].items()),
              "", "⚠ marks a batch size where mlc was slower than the faster of native and plain.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1000 training rows and 5 repeats")
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from mlc.bench.runner import BenchSettings, run_cases
    from mlc.bench.suite import FULL
    from mlc.report import envelope

    suite = [replace(m, train_rows=1000) if args.quick else m for m in FULL
             if not args.only or m.name in args.only]
    settings = BenchSettings(batch_sizes=BATCH_SIZES, repeats=5 if args.quick else 15,
                             sample_ms=2.0 if args.quick else 5.0)
    target = one_core_target()

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlc-bench-optimize-") as tmp, threadpool_limits(1):
        cases = [(m.name, functools.partial(prepare_case, m, Path(tmp), target, say)) for m in suite]
        models = run_cases(cases, settings, say)
    body = {"suite": "optimize-quick" if args.quick else "optimize-full", "settings": settings.to_dict(),
            "models": models, "duration_s": round(time.perf_counter() - started, 1)}
    body["summary"] = summarize(models)
    report = envelope("bench", body, target=target.to_dict())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "optimize.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "optimize.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
