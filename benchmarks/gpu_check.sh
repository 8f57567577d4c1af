#!/usr/bin/env bash
# The GPU target's device check (one run on a lent GPU machine; see ../shared/gpu/NOTES.md).
# Expects onnxruntime-gpu's parts in /tmp/og (copied there by earlier calls), the prepared models
# in .gpu/bench (python benchmarks/bench_gpu.py prepare) and pure-Python wheels in .whl.
# Writes everything under $OUT: the benchmark (gpu.json/.md), the GPU tests' log, doctor's view.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" /tmp/site
[ -d /tmp/site/onnxruntime ] || cat /tmp/og/ort.part* | xz -d | tar x -C /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -c "import onnxruntime as o; o.preload_dlls(); print('onnxruntime', o.__version__, o.get_available_providers())"
python3 setup.py -q build_ext --inplace 2>&1 | tail -3
python3 -m mlc doctor --json > "$OUT/doctor.json" 2>&1 || true
timeout 330 python3 benchmarks/bench_gpu.py run --models .gpu/bench --out "$OUT" --budget-s 0.25 2>&1 | tee "$OUT/bench.log"
OUT=$OUT timeout 150 python3 -m pytest tests/gpu -q -p no:cacheprovider -rs -x 2>&1 | tee "$OUT/gpu_tests.txt" | tail -15
# The tree kernel on 16 clean CPU cores and every tensorized tree model on CUDA (strict placement, NaN parity).
OUT=$OUT MLC_TREES_DIR=.gpu/bench/trees timeout 200 python3 benchmarks/gpu_trees_check.py > "$OUT/trees_device.log" 2>&1
tail -5 "$OUT/trees_device.log" 2>/dev/null
ls -la "$OUT"
