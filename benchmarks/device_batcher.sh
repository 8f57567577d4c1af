#!/usr/bin/env bash
# bench_batcher.py on a lent device machine's 16 CPU cores (no GPU used): the same benchmark as on
# the 2-core development machine, on a host whose thread wake-ups cost less. Expects the
# pure-Python wheels that the device's Python lacks (skl2onnx, onnxconverter-common) in .whl.
# Writes batcher.json / batcher.md and the log under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
python3 setup.py -q build_ext --inplace 2>&1 | tail -3
{ nproc; lscpu | grep -E "Model name|^CPU\(s\)"; python3 --version; } | tee "$OUT/machine.txt"
timeout 360 python3 benchmarks/bench_batcher.py --out "$OUT" 2>&1 | tee "$OUT/bench_batcher.log"
