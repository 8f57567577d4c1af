"""Real processes against one registry: concurrent numbering and crash consistency."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlc.registry import Registry
from mlc.registry._store import sha256_file

_REGISTER_ONE = """
import os, sys, time
from pathlib import Path
from mlc.registry import Registry
from mlc.signature import tabular
home, go, idx = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
reg = Registry(home)
while not go.exists():
    time.sleep(0.001)
mv = reg.register("shared", f"artifact-{idx}".encode(), format="onnx", framework="onnx",
                  signature=tabular(3, task="regression"))
print(mv.version)
"""

_REGISTER_FOREVER = """
import os, sys
from pathlib import Path
from mlc.registry import Registry
from mlc.signature import tabular
reg = Registry(Path(sys.argv[1]))
print("ready", flush=True)
i = 0
while True:
    i += 1
    data = os.urandom(8 << 20) + str(i).encode()  # big enough that a kill lands mid-write
    reg.register("big", data, format="onnx", framework="onnx", signature=tabular(3, task=None))
"""


def test_eight_processes_registering_one_name_get_distinct_consecutive_versions(tmp_path):
    home, go = tmp_path / "home", tmp_path / "go"
    Registry(home)  # schema exists before the race, as after any first use
    procs = [subprocess.Popen([sys.executable, "-c", _REGISTER_ONE, str(home), str(go), str(i)],
                              stdout=subprocess.PIPE, text=True) for i in range(8)]
    time.sleep(1.0)  # let every process import and wait at the barrier
    go.touch()
    versions = sorted(int(p.communicate(timeout=120)[0].strip()) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert versions == list(range(1, 9))
    reg = Registry(home)
    assert sorted(reg.get(f"shared:{v}").digest for v in versions) == sorted(
        {reg.get(f"shared:{v}").digest for v in versions})


def test_killing_a_registering_process_leaves_the_registry_consistent(tmp_path):
    home = tmp_path / "home"
    rng = random.Random(7)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _REGISTER_FOREVER, str(home)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    reg = Registry(home)
    versions = reg.list(name="big")
    assert versions, "the writer never committed a version; the kill window is too short"
    assert [mv.version for mv in versions] == list(range(1, len(versions) + 1))
    for mv in versions:  # no row without its complete artifact
        assert sha256_file(reg.artifact_path(mv)) == mv.digest
    visible = [p for p in (home / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    for blob in visible:  # no half-written file under a real name
        assert sha256_file(blob) == blob.name
    assert not [p for p in Path(home).iterdir() if p.name.endswith("-journal")]
