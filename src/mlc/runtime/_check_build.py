"""Finds the compiled core and fails loudly, with the fix, when it is missing.

Like scikit-learn's `__check_build`: a source checkout that was never built
must not limp along on a slow path nobody chose. The pure-numpy twin is used
only when MLC_PURE_PYTHON=1 says so.
"""

from __future__ import annotations

import os
from types import ModuleType

_MISSING = """\
mlc's compiled extension mlc.runtime._core is not built ({error}).
If you installed mlc from a source checkout, build it with
    pip install -e .
or, in the checkout,
    python setup.py build_ext --inplace
(both need a C compiler, Cython and numpy). To run without it, slowly, set MLC_PURE_PYTHON=1."""


def load_core() -> ModuleType:
    """The module providing pack_rows and scatter_rows: compiled, or the pure twin if asked for."""
    if os.environ.get("MLC_PURE_PYTHON") == "1":
        from mlc.runtime import _pycore

        return _pycore
    try:
        from mlc.runtime import _core
    except ImportError as exc:
        raise ImportError(_MISSING.format(error=exc)) from exc
    return _core


core = load_core()
