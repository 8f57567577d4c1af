"""The `mlc` command as a user runs it: real processes, real exit codes, real files."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression


@pytest.fixture()
def env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MLC_HOME", str(home))
    return {"MLC_HOME": str(home)}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path_factory.mktemp("models") / "clf.joblib"
    joblib.dump(model, path)
    return path


def mlc(*args, check_code=0):
    proc = subprocess.run([sys.executable, "-m", "mlc", *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == check_code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def test_register_prints_name_and_version_and_numbers_grow(env, model_file):
    assert mlc("register", model_file, "--name", "clf", "--tag", "team=risk").stdout.strip() == "clf:1"
    assert mlc("register", model_file, "--name", "clf", "--alias", "prod").stdout.strip() == "clf:2"
    shown = json.loads(mlc("models", "show", "clf@prod", "--json").stdout)
    assert shown["ref"] == "clf:2" and shown["framework"] == "sklearn" and shown["format"] == "joblib"
    assert shown["signature"]["n_features"] == 4 and shown["signature"]["task"] == "classification"
    listed = json.loads(mlc("models", "list", "--tag", "team=risk", "--json").stdout)
    assert [v["ref"] for v in listed] == ["clf:1"]


def test_tag_alias_export_delete(env, model_file, tmp_path):
    mlc("register", model_file, "--name", "m")
    mlc("register", model_file, "--name", "m")
    assert json.loads(mlc("models", "tag", "m:1", "stage=dev", "--json").stdout)["tags"] == {"stage": "dev"}
    mlc("models", "alias", "m:1", "prod")
    out = tmp_path / "exported.joblib"
    mlc("models", "export", "m@prod", out)
    assert out.read_bytes() == model_file.read_bytes()
    refused = mlc("models", "delete", "m:1", "--yes", check_code=1)
    assert "@prod" in refused.stderr
    declined = subprocess.run([sys.executable, "-m", "mlc", "models", "delete", "m:2"], input="n\n",
                              capture_output=True, text=True, timeout=120)
    assert declined.returncode == 1 and "Aborted" in declined.stderr and "internal error" not in declined.stderr
    assert "needs --yes" in mlc("models", "delete", "m:2", "--json", check_code=2).stderr  # a script asks nobody
    mlc("models", "delete", "m:2", "--yes")
    assert [v["ref"] for v in json.loads(mlc("models", "list", "--json").stdout)] == ["m:1"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (__import__("os").system, (f"touch {self.marker}",))


def test_unsafe_pickle_is_refused_with_exit_code_3_and_runs_nothing(env, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil(marker)))
    proc = mlc("register", path, "--name", "evil", check_code=3)
    assert "system" in proc.stderr and "--trust" in proc.stderr
    assert not marker.exists()
    assert json.loads(mlc("models", "list", "--json").stdout) == []


@pytest.mark.parametrize("content", [b"", b"\x80\x04\x95", b"hello, not a model\n", bytes(range(256)) * 4])
def test_bad_files_give_a_clear_error_not_a_traceback(env, tmp_path, content):
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    proc = mlc("register", path, check_code=1)
    assert "model.pkl" in proc.stderr


def test_usage_errors_exit_2(env, model_file):
    mlc("register", model_file, "--tag", "no-equals-sign", check_code=2)
    mlc("frobnicate", check_code=2)
    assert "Exit codes" in mlc("--help").stdout


def test_missing_reference_and_file_exit_1(env, tmp_path):
    assert "mlc models list" in mlc("models", "show", "ghost", check_code=1).stderr
    mlc("register", tmp_path / "nope.pkl", check_code=1)


def test_doctor_and_targets_report_this_machine(env):
    info = json.loads(mlc("doctor", "--json").stdout)
    assert "CPUExecutionProvider" in info["onnxruntime"]["providers"]
    assert info["compiled_extension"]["loaded"] is True
    assert info["cpu"]["logical_cores"] >= 1 and info["memory_gib"] > 0
    names = {t["name"] for t in json.loads(mlc("targets", "--json").stdout)}
    assert {"cpu-2", "cpu-8", "gpu-h100"} <= names


def test_a_recorded_deployment_protects_its_versions_until_undeployed(env, model_file):
    from mlc.registry import Registry

    mlc("register", model_file, "--name", "d")
    Registry.open().record_deployment("d", {1: 100})
    assert "mlc models undeploy d" in mlc("models", "delete", "d:1", "--yes", check_code=1).stderr
    assert json.loads(mlc("models", "undeploy", "d", "--json").stdout) == {"ended": "d", "split": {"d:1": 100.0}}
    mlc("models", "undeploy", "d", check_code=1)
    mlc("models", "delete", "d:1", "--yes")
