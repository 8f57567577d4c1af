"""Webhook delivery against a real HTTP receiver on loopback: retries with backoff on a moved clock,
signatures, order, and at-least-once across a deliverer killed with -9."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlc.events import outbox
from mlc.events.deliver import SIGNATURE_HEADER, Backoff, Deliverer
from mlc.events.hooks import add_hook, attempts, list_hooks, remove_hook
from mlc.registry import Registry
from mlc.signature import tabular

SIG = tabular(4, task="classification", classes=[0, 1])


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def add(reg: Registry, name: str) -> None:
    reg.register(name, name.encode(), format="onnx", framework="onnx", signature=SIG)


def wait_for(predicate, timeout: float = 60.0) -> bool:
    """Polls: the test states an outcome, never how long it should take."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_receiver_failing_three_times_gets_every_event(registry: Registry, receiver) -> None:
    r = receiver(fail_first=3)
    hook = add_hook(registry, r.url, secret="s3cret")
    for name in ("a", "b", "c"):
        add(registry, name)
    clock = Clock()
    deliverer = Deliverer(registry, clock=clock, backoff=Backoff(base_s=1.0, factor=2.0))
    waits = []
    for _ in range(3):  # each pass: one failed attempt at the head of the line, then nothing is due
        assert deliverer.run_once() == 1
        assert deliverer.run_once() == 0  # not due again until the backoff has passed
        waits.append(max(a["at"] for a in attempts(registry)))
        step = {1: 1.0, 2: 2.0, 3: 4.0}[len(waits)]
        clock.now += step - 0.001
        assert deliverer.run_once() == 0  # a hair early: still waiting
        clock.now += 0.001
    assert deliverer.run_once() == 3  # the retried head, then the two behind it
    events = outbox.read(registry.engine)
    assert [e["id"] for e in r.delivered()] == [e.id for e in events]  # every event, in order
    tried = attempts(registry, hook.id)
    assert [a["status"] for a in tried] == [500, 500, 500, 200, 200, 200]
    assert [a["error"] for a in tried[:3]] == ["HTTP 500"] * 3
    for headers, body, _ in r.requests:
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER.lower()] == expected
        assert headers["content-type"] == "application/cloudevents+json"
    assert deliverer.run_once() == 0  # delivered once each: nothing left


def test_types_filter_and_history_before_the_hook(registry: Registry, receiver) -> None:
    r = receiver()
    add(registry, "old")  # before the hook: not sent
    hook = add_hook(registry, r.url, types=["alias_moved"])
    add(registry, "new")
    registry.set_alias("new:1", "prod")
    Deliverer(registry).run_once()
    assert [e["type"] for e in r.delivered()] == ["mlc.model.alias_moved"]
    assert list_hooks(registry)[0].to_dict()["signed"] is False
    remove_hook(registry, hook.id)
    assert list_hooks(registry) == []


def test_an_unreachable_receiver_is_retried(registry: Registry) -> None:
    add_hook(registry, "http://127.0.0.1:9/nothing-listens-here")
    add(registry, "a")
    clock = Clock()
    deliverer = Deliverer(registry, clock=clock, timeout_s=2)
    assert deliverer.run_once() == 1
    (attempt,) = attempts(registry)
    assert attempt["status"] is None and "Error" in attempt["error"]


def _deliverer(home: Path, url: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLC_HOME": str(home)}
    if url:
        env["MLC_REGISTRY_URL"] = url
    else:
        env.pop("MLC_REGISTRY_URL", None)
    command = [sys.executable, "-c", "from mlc.cli import main; main()", "hooks", "run", "--poll", "0.05"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_deliverer_killed_mid_delivery_loses_nothing(registry: Registry, receiver, tmp_path: Path,
                                                       registry_url: str | None) -> None:
    """kill -9 while the receiver holds the 3rd event: a restarted deliverer sends it (again) and the rest."""
    r = receiver(hold_at=3)
    add_hook(registry, r.url)
    for i in range(6):
        add(registry, f"m{i}")
    proc = _deliverer(tmp_path / "home", registry_url)
    try:
        assert r.holding.wait(120), "the deliverer never reached the 3rd event"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        r.release.set()
        proc = _deliverer(tmp_path / "home", registry_url)
        ids = {e.id for e in outbox.read(registry.engine)}
        assert wait_for(lambda: {e["id"] for e in r.delivered()} >= ids, 120), "events lost"
    finally:
        proc.kill()
        proc.wait()
    received = [e["id"] for e in r.delivered()]
    assert len(received) >= len(ids) and set(received) == ids


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_mlc_events_and_hooks_commands(registry: Registry, receiver, tmp_path: Path, monkeypatch) -> None:
    import json

    from click.testing import CliRunner

    from mlc.cli import cli

    monkeypatch.setenv("MLC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLC_REGISTRY_URL", raising=False)
    r = receiver()
    runner = CliRunner()
    result = runner.invoke(cli, ["hooks", "add", r.url, "--type", "registered", "--secret", "topsecretvalue", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["signed"] is True
    add(registry, "a")
    registry.set_alias("a:1", "prod")
    result = runner.invoke(cli, ["events", "--json"])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [e["type"] for e in lines] == ["mlc.model.registered", "mlc.model.alias_moved"]
    result = runner.invoke(cli, ["events", "--type", "alias_moved", "--since", "1h"])
    assert result.exit_code == 0 and "alias_moved" in result.output and "registered" not in result.output
    assert "topsecretvalue" not in runner.invoke(cli, ["hooks", "list", "--json"]).output
    assert runner.invoke(cli, ["hooks", "remove", "1"]).exit_code == 0
    bad = runner.invoke(cli, ["hooks", "add", "ftp://nope"])
    assert bad.exit_code == 2 and "http(s)" in bad.output
