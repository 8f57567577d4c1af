"""Device check of mlc.trees: clean-CPU timings of the kernel against ORT (1 thread and all cores),
and the tensorized ensembles on CUDA (strict placement, parity with NaNs, timing). Writes $OUT/device.json.

Reads the plainly converted tree models of the optimize suite from $MLC_TREES_DIR (default
.gpu/bench/trees), written by `python benchmarks/bench_gpu.py prepare`. Run by benchmarks/gpu_check.sh.
"""

import json
import os
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(os.environ.get("MLC_TREES_DIR", ".gpu/bench/trees"))
OUT = Path(os.environ.get("OUT", "/tmp")) / "device.json"
RESULT: dict = {"cpu": {}, "gpu": {}, "errors": []}
NAMES = ["forest-100", "hist-gb-200", "gb-regressor-200", "xgboost-300", "lightgbm-300"]


def save() -> None:
    OUT.write_text(json.dumps(RESULT, indent=1, default=str))


def med(fn, seconds: float, min_n: int = 5) -> float:
    fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < min_n:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def interleaved(calls: dict, seconds: float) -> dict:
    res = {k: [] for k in calls}
    for _ in range(5):
        for k, fn in calls.items():
            res[k].append(med(fn, seconds / 5, 3))
    return {k: round(float(np.median(v)), 2) for k, v in res.items()}


def session(ort, data: bytes, threads: int, cuda: bool = False, strict: bool = False):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    if strict:  # fail instead of silently running a node on the CPU
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    providers = ["CUDAExecutionProvider"] if strict else ["CPUExecutionProvider"]
    if cuda and not strict:
        providers.insert(0, "CUDAExecutionProvider")
    s = ort.InferenceSession(data, so, providers=providers)
    feed = s.get_inputs()[0].name
    outs = [o.name for o in s.get_outputs()]
    return lambda x: dict(zip(outs, s.run(None, {feed: x}), strict=True))


def cpu_part(ort, cores: int) -> None:
    import onnx

    from mlc.trees import compile_tree_ensemble

    for name in NAMES:
        try:
            data = (HERE / f"{name}.onnx").read_bytes()
            proto = onnx.load_from_string(data)
            x = np.load(HERE / f"{name}.npy")
            k1, kall = compile_tree_ensemble(proto, 1), compile_tree_ensemble(proto, cores)
            o1, oall = session(ort, data, 1), session(ort, data, cores)
            big = np.ascontiguousarray(np.tile(x, (16, 1)))
            row = {}
            for b in (1, 32, 1024, 16384):
                xb = np.ascontiguousarray(big[:b])
                want = o1(xb)
                errs = {}
                for label, fn in (("mlc-1t", k1.predict), ("mlc-all", kall.predict)):
                    got = fn(xb)
                    errs[label] = max(float(np.max(np.abs(got[n].astype(float) - want[n].astype(float))
                                                / np.maximum(1, np.abs(want[n].astype(float)))))
                                      for n in want)
                secs = 1.0 if b < 16384 else 2.0
                calls = {"mlc-1t": partial(k1.predict, xb), "mlc-all": partial(kall.predict, xb),
                         "ort-1t": partial(o1, xb), "ort-all": partial(oall, xb)}
                row[b] = {"us": interleaved(calls, secs),
                          "max_err": errs}
                print(name, b, row[b], flush=True)
            RESULT["cpu"][name] = row
        except Exception:
            RESULT["errors"].append(f"cpu {name}: {traceback.format_exc()}")
            print(RESULT["errors"][-1], flush=True)
        save()


def gpu_part(ort, cores: int) -> None:
    import onnx

    from mlc.trees import tensorize_tree_ensemble

    for name in NAMES:
        data = (HERE / f"{name}.onnx").read_bytes()
        proto = onnx.load_from_string(data)
        x = np.load(HERE / f"{name}.npy")
        x_nan = x.copy()
        x_nan[::7, 3] = np.nan
        big = np.ascontiguousarray(np.tile(x, (64, 1)))  # 65536 rows
        ref, cpu_all = session(ort, data, 1), session(ort, data, cores)
        entry = {}
        for strategy in ("gemm", "tree_traversal", "auto"):
            try:
                t0 = time.perf_counter()
                tz = tensorize_tree_ensemble(proto, strategy)
                tz_bytes = tz.SerializeToString()
                info = {"build_s": round(time.perf_counter() - t0, 2), "mb": round(len(tz_bytes) / 1e6, 1),
                        "ops": len(tz.graph.node)}
                try:
                    gpu = session(ort, tz_bytes, 1, cuda=True, strict=True)
                    info["all_on_cuda"] = True
                except Exception as exc:
                    info["all_on_cuda"] = f"no: {str(exc)[:300]}"
                    gpu = session(ort, tz_bytes, 1, cuda=True)
                parity = {}
                for label, xs in (("rows", x), ("rows_nan", x_nan)):
                    want, got = ref(xs), gpu(xs)
                    parity[label] = {}
                    for n in want:
                        w, g = want[n], got[n]
                        if w.dtype.kind == "f":
                            parity[label][n] = float(np.max(np.abs(g - w) / np.maximum(1, np.abs(w))))
                        else:
                            parity[label][n] = float(np.mean(g == w))
                info["parity"] = parity
                times = {}
                for b in (1, 1024, 65536):
                    xb = np.ascontiguousarray(big[:b])
                    times[b] = interleaved({"cuda": partial(gpu, xb), "ort-cpu-all": partial(cpu_all, xb)}, 1.5)
                info["us"] = times
                entry[strategy] = info
                print(name, strategy, info, flush=True)
            except Exception:
                entry[strategy] = {"error": traceback.format_exc()[-1500:]}
                print(name, strategy, entry[strategy], flush=True)
            RESULT["gpu"][name] = entry
            save()


def main() -> None:
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    cores = os.cpu_count() or 1
    RESULT["env"] = {"ort": ort.__version__, "providers": ort.get_available_providers(), "cores": cores}
    print(RESULT["env"], flush=True)
    cpu_part(ort, cores)
    gpu_part(ort, cores)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    t0 = time.time()
    main()
    RESULT["duration_s"] = round(time.time() - t0, 1)
    save()
    print("done", RESULT["duration_s"], flush=True)
