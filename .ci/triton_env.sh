#!/usr/bin/env bash
# Makes a Python environment that runs Triton's Python backend with mlc, and prints its python for
# MLC_TRITON_PYTHON (tests/deploy/test_tritonserver.py). nvidia-pytriton's wheel bundles a
# tritonserver (2.51, Python backend only) and the backend's stubs; that stub returns empty output
# tensors with numpy 2, so this environment pins numpy<2 (mlc supports numpy>=1.26). mlc is installed
# editable from this checkout, so the test runs the code under test. Only package registries are used.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-$PWD/.ci-cache/triton-venv}
if ! "$venv/bin/python" -c "import pytriton, mlc" >/dev/null 2>&1; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "nvidia-pytriton>=0.7" "numpy>=1.26,<2" -e . >&2
fi
echo "$venv/bin/python"
