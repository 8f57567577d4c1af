"""The optimize stage's entry points: where a user finds them, and what importing costs."""

from __future__ import annotations

import subprocess
import sys


def test_the_stages_are_reached_from_the_top_package():
    import mlc
    from mlc.optimize import OptimizeResult, optimize
    from mlc.optimize.flow import optimize as flow_optimize
    from mlc.optimize.result import OptimizeResult as Result
    from mlc.profile.runner import profile

    assert mlc.optimize.optimize is optimize is flow_optimize
    assert OptimizeResult is Result
    assert mlc.profile.profile is profile


def test_importing_mlc_or_the_parity_module_does_not_import_the_search():
    code = ("import sys, mlc, mlc.optimize.validate; "
            "print(sorted(m for m in ('mlc.optimize.flow', 'mlc.profile', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
