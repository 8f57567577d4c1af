"""`mlc doctor`'s judgement of the onnxruntime install: the CPU and GPU packages must not be mixed."""

from __future__ import annotations

from mlc import doctor


def _versions(monkeypatch, installed: dict[str, str], providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
    """Pretend these packages are installed and onnxruntime offers these providers, on any machine."""
    import onnxruntime

    monkeypatch.setattr(doctor, "_version", lambda name: installed.get(name))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))


def test_cpu_and_gpu_packages_side_by_side_are_reported_with_the_fix(monkeypatch):
    _versions(monkeypatch, {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"})
    problem = doctor.onnxruntime_install()["problem"]
    assert "both onnxruntime and onnxruntime-gpu" in problem and "pip uninstall -y onnxruntime" in problem


def test_gpu_package_without_a_cuda_provider_is_reported(monkeypatch):
    _versions(monkeypatch, {"onnxruntime-gpu": "1.31.1"})
    info = doctor.onnxruntime_install()
    assert "no CUDAExecutionProvider" in info["problem"]


def test_a_working_gpu_install_has_no_problem(monkeypatch):
    _versions(monkeypatch, {"onnxruntime-gpu": "1.31.1"}, ("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert doctor.onnxruntime_install()["problem"] is None


def test_the_cpu_package_alone_is_fine(monkeypatch):
    _versions(monkeypatch, {"onnxruntime": "1.32.0"})
    info = doctor.onnxruntime_install()
    assert info["problem"] is None and "CPUExecutionProvider" in info["providers"]
