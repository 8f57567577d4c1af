"""What mlc will use on this machine, gathered for `mlc doctor` and for reports' hardware sections."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def gpus() -> list[dict[str, Any]]:
    """GPUs seen through NVML (pynvml, if installed) or nvidia-smi; empty when none."""
    try:
        import pynvml

        pynvml.nvmlInit()
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            found.append({"index": i, "name": name if isinstance(name, str) else name.decode(),
                          "memory_gib": round(mem.total / 2**30, 1)})
        return found
    except Exception:
        pass
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        index, name, mem = (part.strip() for part in line.split(","))
        found.append({"index": int(index), "name": name, "memory_gib": round(float(mem) / 1024, 1)})
    return found


def onnxruntime_install() -> dict[str, Any]:
    """Which onnxruntime packages are installed, and whether they form a broken mix.

    onnxruntime and onnxruntime-gpu install the same module; with both present,
    whichever was installed last wins and the CUDA provider may silently vanish.
    """
    cpu, gpu = _version("onnxruntime"), _version("onnxruntime-gpu")
    info: dict[str, Any] = {"onnxruntime": cpu, "onnxruntime-gpu": gpu, "problem": None}
    if cpu and gpu:
        info["problem"] = (
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other. Fix: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
        )
    try:
        import onnxruntime as ort

        info["version"] = ort.__version__
        info["providers"] = ort.get_available_providers()
        info["device"] = ort.get_device()
    except ImportError as exc:
        info["problem"] = f"onnxruntime does not import: {exc}"
        info["providers"] = []
    if gpu and "CUDAExecutionProvider" not in info.get("providers", []):
        info["problem"] = info["problem"] or (
            "onnxruntime-gpu is installed but has no CUDAExecutionProvider: CUDA 13 / cuDNN 9 "
            "libraries are missing, or the CPU onnxruntime overwrote it"
        )
    return info


def extension_status() -> dict[str, Any]:
    try:
        from mlc.runtime import _core

        return {"loaded": True, "path": _core.__file__}
    except ImportError as exc:
        return {"loaded": False, "error": str(exc).splitlines()[0]}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU as a bench gate tells hosts apart: name with family, model and stepping where Linux says them.

    `platform.processor()` is empty on Linux and `platform.machine()` only says "x86_64", so two hosts
    whose ratios differ (a Zen 3 and a Zen 4 both named "AMD EPYC" by their hypervisor) looked alike.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or fields.get("Processor") or platform.machine()
    detail = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if fields.get(k)]
    return f"{name} ({', '.join(detail)})" if detail else name


def collect() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {
        "mlc": _version("mlc"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": {
            "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "model": cpu_model(),
        },
        "memory_gib": round(vm.total / 2**30, 1),
        "onnxruntime": onnxruntime_install(),
        "numba": _version("numba"),
        "compiled_extension": extension_status(),
        "gpus": gpus(),
        "frameworks": {p: _version(p) for p in ("scikit-learn", "xgboost", "lightgbm", "skl2onnx", "onnxmltools",
                                               "onnx")},
    }
