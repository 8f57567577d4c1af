"""Builds the compiled scoring core (csrc/*.pyx) into mlc.runtime._core.

Metadata lives in pyproject.toml; this file exists only because the Cython
extension needs numpy's include directory at build time.
"""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "mlc.runtime._core",
        sources=["csrc/_core.pyx"],
        depends=["csrc/_treecall.pxi"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )
)
