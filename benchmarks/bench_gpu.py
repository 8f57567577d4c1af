"""GPU benchmark: tree models and an MLP on CUDA, plain conversion vs mlc's GPU candidates vs the CPU.

ONNX Runtime has no CUDA kernel for TreeEnsemble: a plainly converted forest in a CUDA session
runs its trees on the CPU. mlc rewrites trees as tensor operations (tree traversal / GEMM) and
casts MLPs to fp16; this script measures what that buys on a real GPU, with parity checked on
the GPU itself against the original model's own predictions.

Two phases, because the GPU machine has neither our converters nor XGBoost:
  prepare (here, CPU):  python benchmarks/bench_gpu.py prepare --out .gpu/bench
  run (GPU machine):    python benchmarks/bench_gpu.py run --models .gpu/bench --out benchmarks/results
`run` needs only numpy and onnxruntime-gpu (plus mlc's Scorer for the I/O-bound path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

BATCHES = (1, 256, 4096, 65536)
MODELS = ("forest-100", "xgboost-300", "mlp-256x2")


# ---- prepare (CPU, with mlc's converters and passes) ------------------------------------------

def prepare(out: Path) -> None:
    from mlc.bench.suite import FULL
    from mlc.convert import convert, native
    from mlc.loading import infer_signature
    from mlc.loading.model import LoadedModel
    from mlc.passes.fp16 import Float16
    from mlc.targets import get_target
    from mlc.trees import tensorize_tree_ensemble

    out.mkdir(parents=True, exist_ok=True)
    gpu = get_target("gpu")
    by_name = {m.name: m for m in FULL}
    manifest = {}
    for name in MODELS:
        spec = by_name[name]
        model, rows = spec.train()
        framework = "xgboost" if name.startswith("xgboost") else "sklearn"
        loaded = LoadedModel(model=model, format="pickle", framework=framework,
                             signature=infer_signature(model, framework))
        plain = convert(loaded)
        variants = {"plain": plain.onnx_bytes}
        if name == "mlp-256x2":
            variants["fp16"] = Float16().run(plain, gpu).onnx_bytes
        else:
            for strategy in ("tree_traversal", "gemm"):
                try:
                    variants[strategy] = tensorize_tree_ensemble(plain.proto, strategy).SerializeToString()
                except Exception as exc:
                    print(f"{name}: {strategy} not built: {exc}")
        folder = out / name
        folder.mkdir(exist_ok=True)
        for variant, data in variants.items():
            (folder / f"{variant}.onnx").write_bytes(data)
        reference = native(loaded).outputs(rows)
        np.save(folder / "rows.npy", rows)
        for key, value in reference.items():
            np.save(folder / f"ref_{key}.npy", np.asarray(value))
        manifest[name] = {"variants": sorted(variants), "reference": sorted(reference),
                          "description": spec.description}
        print(f"{name}: {', '.join(f'{v} {len(d) / 1e6:.1f} MB' for v, d in variants.items())}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    _prepare_tree_models(out / "trees")


def _prepare_tree_models(out: Path) -> None:
    """Every tree model of the suite, plainly converted, for benchmarks/gpu_trees_check.py."""
    from mlc.bench.suite import FULL, converted_onnx

    out.mkdir(parents=True, exist_ok=True)
    for spec in FULL:
        if spec.name not in ("forest-100", "hist-gb-200", "gb-regressor-200", "xgboost-300", "lightgbm-300"):
            continue
        model, rows = spec.train()
        (out / f"{spec.name}.onnx").write_bytes(converted_onnx(model))
        np.save(out / f"{spec.name}.npy", rows)


# ---- run (GPU machine) -----------------------------------------------------------------------

def _session(path: Path, provider: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    providers = [provider, "CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [provider]
    return ort.InferenceSession(str(path), opts, providers=providers)


def _timed(call, budget_s: float, min_repeats: int = 5) -> dict[str, float]:
    for _ in range(3):
        call()
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < budget_s and len(times) < 2000):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_ms": statistics.median(times) * 1e3, "p99_ms": times[int(0.99 * (len(times) - 1))] * 1e3,
            "repeats": len(times)}


def _bound_run(sess, x: np.ndarray, io_binding: bool):
    """One call on x; with I/O binding the input is copied to the device once and outputs back once."""
    name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]
    if not io_binding:
        return lambda: sess.run(outs, {name: x})

    def run():
        binding = sess.io_binding()
        binding.bind_cpu_input(name, x)
        for out in outs:
            binding.bind_output(out, "cpu")
        sess.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()
    return run


def _parity(sess, rows: np.ndarray, refs: dict[str, np.ndarray]) -> dict[str, float]:
    name = sess.get_inputs()[0].name
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {name: rows}), strict=True))
    result = {}
    if "probabilities" in refs and "probabilities" in outs:
        result["max_abs_error"] = float(np.max(np.abs(outs["probabilities"] - refs["probabilities"])))
    if "label" in refs and "label" in outs:
        result["label_agreement"] = float(np.mean(outs["label"].ravel() == refs["label"].ravel()))
    if "variable" in refs and "variable" in outs:
        result["max_abs_error"] = float(np.max(np.abs(outs["variable"].ravel() - refs["variable"].ravel())))
    return result


def run(models: Path, out: Path, budget_s: float) -> dict:
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        raise SystemExit(f"no CUDAExecutionProvider in this onnxruntime ({providers}); run on a GPU machine")
    cores = len(os.sched_getaffinity(0))
    manifest = json.loads((models / "manifest.json").read_text())
    results = []
    for name, info in manifest.items():
        folder = models / name
        rows = np.load(folder / "rows.npy")
        refs = {key: np.load(folder / f"ref_{key}.npy") for key in info["reference"]}
        configs = [("cpu", "plain", "CPUExecutionProvider")] + [("cuda", v, "CUDAExecutionProvider")
                                                                 for v in info["variants"]]
        for device, variant, provider in configs:
            sess = _session(folder / f"{variant}.onnx", provider, cores)
            parity = _parity(sess, rows, refs)  # on the device itself: TF32 / fp16 errors show here
            for batch in BATCHES:
                x = np.ascontiguousarray(rows[np.arange(batch) % len(rows)])
                timing = _timed(_bound_run(sess, x, io_binding=device == "cuda"), budget_s)
                rate = batch / (timing["median_ms"] / 1e3)
                results.append({"model": name, "device": device, "variant": variant, "batch": batch,
                                **timing, "rows_per_s": rate, **parity})
                print(f"{name:12} {device:4} {variant:15} b{batch:<6} {timing['median_ms']:9.3f} ms "
                      f"{rate / 1e6:8.3f} M rows/s  {parity}", flush=True)
                if device == "cuda" and variant != "plain":
                    results.extend(_scorer_point(folder / f"{variant}.onnx", name, variant, x, budget_s, refs,
                                                     rows))
    report = {"schema": "mlc.bench-gpu/1", "gpu": _gpu_name(), "onnxruntime": ort.__version__,
              "providers": providers, "cpu_cores": cores, "platform": platform.platform(), "results": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=2))
    (out / "gpu.md").write_text(markdown(report))
    return report


def _scorer_point(path: Path, name: str, variant: str, x: np.ndarray, budget_s: float,
                  refs: dict[str, np.ndarray], rows: np.ndarray) -> list[dict]:
    """The same variant through mlc's Scorer, as `mlc serve` runs it (CUDA-graph replay where capturable)."""
    from mlc.runtime.scorer import Scorer

    scorer = Scorer(path, target="gpu")
    check = scorer.predict(rows)
    parity = {}
    if "probabilities" in check:
        parity["max_abs_error"] = float(np.max(np.abs(check["probabilities"] - refs["probabilities"])))
        parity["label_agreement"] = float(np.mean(check["label"].ravel() == refs["label"].ravel()))
    prepared = scorer.prepare(x)
    timing = _timed(lambda: scorer.predict(prepared), budget_s)
    rate = len(x) / (timing["median_ms"] / 1e3)
    label = f"{variant}/mlc" + ("+graph" if scorer.cuda_graphs else "")
    print(f"{name:12} cuda {label:15} b{len(x):<6} {timing['median_ms']:9.3f} ms "
          f"{rate / 1e6:8.3f} M rows/s  {parity}", flush=True)
    return [{"model": name, "device": "cuda", "variant": label, "batch": len(x), **timing, "rows_per_s": rate,
             "cuda_graphs": scorer.cuda_graphs, **parity}]


def _gpu_name() -> str:
    import subprocess

    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except OSError:
        return "unknown"


def markdown(report: dict) -> str:
    lines = [f"# GPU benchmark on {report['gpu']}", "",
             f"ONNX Runtime {report['onnxruntime']}, {report['cpu_cores']} CPU cores; medians; CUDA runs with "
             "I/O binding (one copy in, one copy out per call); parity measured on the device against the "
             "original model's predictions.", "",
             "| model | batch | CPU plain M rows/s | CUDA plain M rows/s | best mlc GPU variant | M rows/s | "
             "× CUDA plain | × CPU | parity (max abs err / labels) |",
             "|---|---|---|---|---|---|---|---|---|"]
    by_key = {(r["model"], r["device"], r["variant"], r["batch"]): r for r in report["results"]}
    for model in dict.fromkeys(r["model"] for r in report["results"]):
        for batch in BATCHES:
            cpu = by_key.get((model, "cpu", "plain", batch))
            plain = by_key.get((model, "cuda", "plain", batch))
            others = [r for r in report["results"] if r["model"] == model and r["device"] == "cuda"
                      and r["variant"] != "plain" and r["batch"] == batch]
            if not (cpu and plain):
                continue
            best = max(others, key=lambda r: r["rows_per_s"]) if others else plain
            parity = f"{best.get('max_abs_error', float('nan')):.1e} / {best.get('label_agreement', 1.0):.4f}"
            lines.append(f"| {model} | {batch} | {cpu['rows_per_s'] / 1e6:.3f} | {plain['rows_per_s'] / 1e6:.3f} | "
                         f"{best['variant']} | {best['rows_per_s'] / 1e6:.3f} | "
                         f"{best['rows_per_s'] / plain['rows_per_s']:.1f} | "
                         f"{best['rows_per_s'] / cpu['rows_per_s']:.1f} | {parity} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=Path(".gpu/bench"))
    r = sub.add_parser("run")
    r.add_argument("--models", type=Path, default=Path(".gpu/bench"))
    r.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    r.add_argument("--budget-s", type=float, default=0.5, help="timing budget per configuration and batch size")
    args = parser.parse_args()
    if args.phase == "prepare":
        prepare(args.out)
    else:
        run(args.models, args.out, args.budget_s)


if __name__ == "__main__":
    main()
