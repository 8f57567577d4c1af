"""Every lifecycle change writes its event in the change's own transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest

from mlc.errors import ConflictError
from mlc.events import outbox
from mlc.events.types import check_types, event_types
from mlc.registry import Registry
from mlc.signature import tabular

SIG = tabular(4, task="classification", classes=[0, 1])


def add(reg: Registry, name: str = "m", data: bytes = b"model-bytes", **kw) -> str:
    return reg.register(name, data, format="onnx", framework="onnx", signature=SIG, **kw).ref


def kinds(reg: Registry) -> list[tuple[str, str]]:
    return [(e.type.removeprefix("mlc.model."), e.subject) for e in outbox.read(reg.engine)]


def test_each_change_writes_one_event(registry: Registry) -> None:
    add(registry)
    add(registry, data=b"other", source={"kind": "optimize", "parent": "m:1", "steps": []})
    registry.set_alias("m:1", "prod")
    registry.set_alias("m:2", "prod")
    registry.set_alias("m:2", "prod")  # not a move: no event
    registry.update_metrics("m:2", {"user_score": 1.0})  # not a profile: no event
    registry.record_deployment("m", {1: 90.0, 2: 10.0})
    registry.end_deployment("m")
    registry.end_deployment("m")  # nothing active: no event
    registry.remove_alias("m", "prod")
    registry.delete("m:1")
    assert kinds(registry) == [
        ("registered", "m:1"), ("optimized", "m:2"), ("alias_moved", "m:1"), ("alias_moved", "m:2"),
        ("deployed", "m"), ("undeployed", "m"), ("alias_moved", "m"), ("deleted", "m:1")]
    moved = [e.data for e in outbox.read(registry.engine, types=["mlc.model.alias_moved"])]
    assert [(d["version"], d["previous"]) for d in moved] == [(1, None), (2, 1), (None, 2)]
    deployed = outbox.read(registry.engine, types=["mlc.model.deployed"])[0]
    assert deployed.data["split"] == {"1": 90.0, "2": 10.0}


def test_cloudevents_envelope(registry: Registry) -> None:
    add(registry, "fraud")
    envelope = outbox.read(registry.engine)[0].to_cloudevent()
    # CloudEvents 1.0 required attributes, and the optional ones mlc sets.
    assert envelope["specversion"] == "1.0" and len(envelope["id"]) == 32
    assert envelope["source"] == "/mlc/models/fraud" and envelope["type"] == "mlc.model.registered"
    assert envelope["subject"] == "fraud:1" and envelope["datacontenttype"] == "application/json"
    assert envelope["time"].endswith("Z") and envelope["actor"]
    assert envelope["data"]["version"] == 1 and envelope["data"]["format"] == "onnx"


def test_a_refused_change_writes_no_event(registry: Registry) -> None:
    add(registry)
    registry.set_alias("m:1", "prod")
    with pytest.raises(ConflictError):
        registry.delete("m:1")
    assert [t for t, _ in kinds(registry)] == ["registered", "alias_moved"]


def test_an_event_that_cannot_be_written_undoes_its_change(registry: Registry, monkeypatch) -> None:
    """One transaction: when the event's insert fails, the version row is not committed either."""
    def broken(*args, **kwargs):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(outbox, "record", broken)
    with pytest.raises(RuntimeError, match="outbox down"):
        add(registry)
    monkeypatch.undo()
    assert registry.list() == [] and outbox.read(registry.engine) == []


def test_profile_recorded_is_an_event(registry: Registry) -> None:
    add(registry)
    registry.update_metrics("m:1", {"profile": None})
    assert kinds(registry)[-1] == ("profiled", "m:1")


def test_follow_tails_new_events(registry: Registry) -> None:
    add(registry, "a")
    stop = threading.Event()
    seen: list[str] = []

    def tail() -> None:
        for event in outbox.follow(registry.engine, poll_s=0.02, stop=stop):
            seen.append(event.subject)
            if len(seen) == 3:
                stop.set()

    thread = threading.Thread(target=tail)
    thread.start()
    add(registry, "b")
    add(registry, "c")
    thread.join(30)
    assert seen == ["a:1", "b:1", "c:1"]


def test_types_are_a_registry() -> None:
    assert {"mlc.model.registered", "mlc.model.drift_detected"} <= set(event_types())
    assert check_types(["registered", "mlc.model.deleted"]) == ["mlc.model.registered", "mlc.model.deleted"]
    from mlc.errors import UsageError
    from mlc.events.types import register_event_type

    with pytest.raises(UsageError, match="no event type"):
        check_types(["exploded"])
    with pytest.raises(ConflictError):
        register_event_type("mlc.model.registered", "again")
