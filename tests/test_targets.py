"""Hardware targets load from TOML into typed values; bad files say what is wrong."""

from __future__ import annotations

import pytest

from mlc.errors import NotFoundError, UsageError
from mlc.targets import get_target, list_targets


def test_shipped_targets_and_shorthands():
    names = {t.name for t in list_targets()}
    assert {"cpu-2", "cpu-8", "gpu-h100"} <= names
    assert get_target("cpu").cores == 2 and not get_target("cpu").is_gpu
    gpu = get_target("gpu")
    assert gpu.is_gpu and gpu.execution_providers[0] == "CUDAExecutionProvider" and gpu.price_per_hour > 0


def test_user_file_and_folder(tmp_path, monkeypatch):
    path = tmp_path / "mine.toml"
    path.write_text('name="mine"\ndevice="cpu"\nexecution_providers=["CPUExecutionProvider"]\n'
                    'cores=4\nmemory_gib=8\nprice_per_hour=0.2\n')
    assert get_target(str(path)).cores == 4
    monkeypatch.setenv("MLC_PROFILES", str(tmp_path))
    assert get_target("mine").memory_gib == 8.0


def test_bad_targets(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name="bad"\ndevice="tpu"\nexecution_providers=[]\ncores=1\nmemory_gib=1\nprice_per_hour=1\n')
    with pytest.raises(UsageError, match="device"):
        get_target(str(path))
    path.write_text('name="bad"\n')
    with pytest.raises(UsageError, match="lacks"):
        get_target(str(path))
    with pytest.raises(NotFoundError, match="known targets"):
        get_target("quantum-9000")


def test_a_built_package_carries_the_shipped_targets(tmp_path):
    """The wheel's build step copies profiles/*.toml into mlc/profiles/, and mlc reads them there.

    `pip install .` once installed no targets (`mlc targets` empty, the default target missing
    outside the checkout). build_py is the step a wheel build runs; the package it leaves is
    imported from a folder that is no checkout, so only the copy can be found.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    build = tmp_path / "lib"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)], cwd=root, check=True,
                   capture_output=True, timeout=300)
    shipped = sorted(p.name for p in (root / "profiles").glob("*.toml"))
    assert shipped and sorted(p.name for p in (build / "mlc" / "profiles").glob("*.toml")) == shipped
    env = {**os.environ, "PYTHONPATH": str(build)}
    env.pop("MLC_PROFILES", None)
    code = "import mlc.targets as t; print(t.__file__); print(' '.join(x.name for x in t.list_targets()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith(str(build))  # the built copy, not the checkout's package
    assert sorted(out[1].split()) == sorted(p.removesuffix(".toml") for p in shipped)
