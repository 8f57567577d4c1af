"""Real processes against one registry, on SQLite and on PostgreSQL: concurrent numbering and
crash consistency of registrations, alias moves and deployments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlc.registry import Registry
from mlc.registry._store import sha256_file

PROCESSES, REGISTRATIONS = 8, 50

_REGISTER_MANY = """
import sys, time
from pathlib import Path
from mlc.registry import Registry
from mlc.signature import tabular
home, url, go, idx, count = Path(sys.argv[1]), sys.argv[2] or None, Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
reg = Registry(home, url)
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    mv = reg.register("shared", f"artifact-{idx}-{i}".encode(), format="onnx", framework="onnx",
                      signature=tabular(3, task="regression"))
    print(mv.version, flush=True)
"""

_REGISTER_FOREVER = """
import os, sys
from pathlib import Path
from mlc.registry import Registry
from mlc.signature import tabular
reg = Registry(Path(sys.argv[1]), sys.argv[2] or None)
print("ready", flush=True)
i = 0
while True:
    i += 1
    data = os.urandom(8 << 20) + str(i).encode()  # big enough that a kill lands mid-write
    reg.register("big", data, format="onnx", framework="onnx", signature=tabular(3, task=None))
"""

# Every kind of write in a loop: register, move the alias, move the traffic, delete an old version.
_CHURN_FOREVER = """
import os, sys
from pathlib import Path
from mlc.errors import ConflictError, NotFoundError
from mlc.registry import Registry
from mlc.signature import tabular
reg = Registry(Path(sys.argv[1]), sys.argv[2] or None)
print("ready", flush=True)
while True:
    mv = reg.register("churn", os.urandom(1 << 20), format="onnx", framework="onnx", signature=tabular(3, task=None))
    reg.set_alias(mv.ref, "prod")
    live = [v.version for v in reg.list(name="churn")][-2:]
    reg.record_deployment("churn", {v: 100 / len(live) for v in live})
    for old in reg.list(name="churn")[:-3]:
        try:
            reg.delete(old.ref)
        except (ConflictError, NotFoundError):  # still held by a deployment or alias, or gone already
            pass
"""


def _kill_repeatedly(script: str, home: Path, url: str | None, rounds: int, seed: int) -> None:
    """Start a writer, let it run a random while, SIGKILL it; again, on the same registry."""
    rng = random.Random(seed)
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, "-c", script, str(home), url or ""], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _assert_every_row_has_its_artifact(reg: Registry, name: str) -> None:
    versions = reg.list(name=name)
    assert versions, "the writer never committed a version; the kill window is too short"
    for mv in versions:  # no row without its complete artifact
        assert sha256_file(reg.artifact_path(mv)) == mv.digest
    visible = [p for p in (reg.home / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    for blob in visible:  # no half-written file under a real name
        assert sha256_file(blob) == blob.name


@pytest.mark.slow
def test_eight_processes_registering_one_name_get_distinct_consecutive_versions(tmp_path, registry_url):
    home, go = tmp_path / "home", tmp_path / "go"
    Registry(home, registry_url)  # schema exists before the race, as after any first use
    procs = [subprocess.Popen([sys.executable, "-c", _REGISTER_MANY, str(home), registry_url or "", str(go), str(i),
                               str(REGISTRATIONS)], stdout=subprocess.PIPE, text=True) for i in range(PROCESSES)]
    time.sleep(1.0)  # let every process import and wait at the barrier
    go.touch()
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    versions = sorted(int(line) for out in outputs for line in out.split())
    assert versions == list(range(1, PROCESSES * REGISTRATIONS + 1))
    reg = Registry(home, registry_url)
    digests = [mv.digest for mv in reg.list(name="shared")]
    assert len(set(digests)) == len(digests) == PROCESSES * REGISTRATIONS  # each registration its own row


def test_killing_a_registering_process_leaves_the_registry_consistent(tmp_path, registry_url):
    home = tmp_path / "home"
    _kill_repeatedly(_REGISTER_FOREVER, home, registry_url, rounds=6, seed=7)
    reg = Registry(home, registry_url)
    assert [mv.version for mv in reg.list(name="big")] == list(range(1, len(reg.list(name="big")) + 1))
    _assert_every_row_has_its_artifact(reg, "big")
    assert not [p for p in Path(home).iterdir() if p.name.endswith("-journal")]


def test_killing_writers_moving_aliases_and_deployments_leaves_them_whole(tmp_path, registry_url):
    home = tmp_path / "home"
    _kill_repeatedly(_CHURN_FOREVER, home, registry_url, rounds=6, seed=11)
    reg = Registry(home, registry_url)
    _assert_every_row_has_its_artifact(reg, "churn")
    existing = {mv.version for mv in reg.list(name="churn")}
    assert reg.get("churn@prod").version in existing
    with reg.engine.connect() as conn:
        active = conn.execute(sa.text(
            "SELECT id, spec FROM deployments WHERE name = 'churn' AND active")).all()
        assert len(active) <= 1, f"{len(active)} active deployments of one name"
        for dep_id, spec in active:  # the deployment's rows are the split it recorded, all of it
            spec = json.loads(spec) if isinstance(spec, str) else spec  # SQLite hands raw JSON text back
            rows = conn.execute(sa.text(
                "SELECT version, percent FROM deployment_versions WHERE deployment_id = :d"), {"d": dep_id}).all()
            assert {str(v): p for v, p in rows} == spec["split"]
            assert {v for v, _ in rows} <= existing
    split = reg.active_deployment("churn")
    assert split is not None and abs(sum(split.values()) - 100) < 1e-6


def test_reads_do_not_wait_for_a_writer(tmp_path, registry_url):
    """A reader sees the last commit while a write transaction is open in another process (SQLite
    under WAL; PostgreSQL at READ COMMITTED, where only writers take the registry's lock)."""
    import threading

    from mlc.signature import tabular

    reg = Registry(tmp_path, registry_url)
    reg.register("m", b"one", format="onnx", framework="onnx", signature=tabular(3, task="regression"))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_WRITE_LOCK, str(tmp_path), registry_url or ""],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        seen: list[tuple[int, str]] = []
        reader = threading.Thread(target=lambda: seen.append(
            (lambda mv: (mv.version, mv.description))(Registry(tmp_path, registry_url).get("m"))), daemon=True)
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
reg = Registry(Path(sys.argv[1]), sys.argv[2] or None)
with reg._tx() as conn:
    conn.exec_driver_sql("UPDATE versions SET description = 'being written' WHERE version = 1")
    print("locked", flush=True)
    time.sleep(60)
"""
