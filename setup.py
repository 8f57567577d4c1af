"""Builds the compiled scoring core (csrc/*.pyx) into mlc.runtime._core, and ships the hardware
targets of profiles/*.toml inside the package as mlc/profiles/.

Metadata lives in pyproject.toml; this file exists because the Cython extension needs numpy's
include directory at build time, and because the targets live once, at the top of the checkout
where users read and edit them: a copy under src/ would drift from them. A checkout (editable
install) reads them in place; a wheel carries the copy this build step makes.
"""

import shutil
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PROFILES = Path(__file__).resolve().parent / "profiles"


class BuildPyWithProfiles(build_py):
    """build_py, plus profiles/*.toml copied to mlc/profiles/ in the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's profiles/ directly
            return
        target = Path(self.build_lib) / "mlc" / "profiles"
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(PROFILES.glob("*.toml")):
            shutil.copyfile(path, target / path.name)

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
    cmdclass={"build_py": BuildPyWithProfiles},
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )
)
