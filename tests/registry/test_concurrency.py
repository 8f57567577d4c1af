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


def test_reads_do_not_wait_for_a_writer(tmp_path):
    """Under WAL a reader sees the last commit while a write transaction is open in another process."""
    import threading

    from mlc.signature import tabular

    reg = Registry(tmp_path)
    reg.register("m", b"one", format="onnx", framework="onnx", signature=tabular(3, task="regression"))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_WRITE_LOCK, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        seen: list[tuple[int, str]] = []
        reader = threading.Thread(target=lambda: seen.append(
            (lambda mv: (mv.version, mv.description))(Registry(tmp_path).get("m"))), daemon=True)
        reader.start()
        reader.join(10)  # a read that took the write lock would wait out the 30 s busy timeout
        assert seen == [(1, "")]  # the last commit, not the open transaction's change
    finally:
        holder.kill()
        holder.wait()


_HOLD_WRITE_LOCK = """
import sys, time
from pathlib import Path
from mlc.registry import Registry
reg = Registry(Path(sys.argv[1]))
with reg._tx() as conn:
    conn.exec_driver_sql("UPDATE versions SET description = 'being written' WHERE version = 1")
    print("locked", flush=True)
    time.sleep(60)
"""
