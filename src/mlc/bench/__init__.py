"""Benchmarks of mlc against the native model and plain ONNX Runtime, with parity beside every timing.

`run_bench` measures a built-in suite or registered versions and returns a bench report
(mlc.report.envelope); `mlc report compare` gates CI on the ratios it records.
"""

from mlc.bench.run import run_bench
from mlc.bench.runner import BenchSettings
from mlc.bench.suite import SUITES

__all__ = ["SUITES", "BenchSettings", "run_bench"]
