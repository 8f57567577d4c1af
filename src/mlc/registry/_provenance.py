"""Where a version came from: who, which git commit, which library versions."""

from __future__ import annotations

import getpass
import os
import subprocess
from importlib import metadata
from pathlib import Path

# The libraries whose versions change what a model computes or how fast.
TRACKED_PACKAGES = (
    "mlc", "numpy", "scikit-learn", "onnx", "onnxruntime", "onnxruntime-gpu", "skl2onnx",
    "onnxmltools", "xgboost", "lightgbm", "numba",
)


def package_versions() -> dict[str, str]:
    found = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the working directory's repository (suffixed '-dirty' if modified), else None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def creator() -> str:
    try:
        return os.environ.get("MLC_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
