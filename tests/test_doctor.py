"""`mlc doctor`'s judgement of the onnxruntime install: the CPU and GPU packages must not be mixed."""

from __future__ import annotations

from mlc import doctor


def _versions(monkeypatch, installed: dict[str, str]) -> None:
    monkeypatch.setattr(doctor, "_version", lambda name: installed.get(name))


def test_cpu_and_gpu_packages_side_by_side_are_reported_with_the_fix(monkeypatch):
    _versions(monkeypatch, {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"})
    problem = doctor.onnxruntime_install()["problem"]
    assert "both onnxruntime and onnxruntime-gpu" in problem and "pip uninstall -y onnxruntime" in problem


def test_gpu_package_without_a_cuda_provider_is_reported(monkeypatch):
    _versions(monkeypatch, {"onnxruntime-gpu": "1.31.1"})
    info = doctor.onnxruntime_install()
    assert "CUDAExecutionProvider" not in info["providers"]  # this machine has no GPU build
    assert "no CUDAExecutionProvider" in info["problem"]


def test_the_cpu_package_alone_is_fine(monkeypatch):
    _versions(monkeypatch, {"onnxruntime": "1.32.0"})
    info = doctor.onnxruntime_install()
    assert info["problem"] is None and "CPUExecutionProvider" in info["providers"]
