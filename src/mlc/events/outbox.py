"""The outbox: one row per lifecycle change, written in the change's own transaction.

Why an outbox rather than sending from the code that made the change: a webhook sent before
the change commits can announce something that then rolls back, and one sent after can be lost
to a crash in between. A row committed with the change is exactly as durable as the change;
the deliverer reads rows and sends them later, as many times as it takes.

Each row becomes a CloudEvents 1.0 JSON envelope: specversion, id (unique, for receivers to
drop duplicates), source (/mlc/models/NAME), type, subject (NAME:VERSION, or NAME for a
deployment), time (RFC 3339), datacontenttype, data, and the extension attribute `actor` (who
made the change, as the registry records creators).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlc.registry import _schema as s
from mlc.registry._provenance import creator

SPEC_VERSION = "1.0"


@dataclass(frozen=True)
class Event:
    seq: int  # the outbox's order; not part of the envelope
    id: str
    type: str
    subject: str
    source: str
    created_at: float
    actor: str
    data: dict[str, Any]

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents 1.0 structured-mode JSON object."""
        return {"specversion": SPEC_VERSION, "id": self.id, "source": self.source, "type": self.type,
                "subject": self.subject, "time": rfc3339(self.created_at), "datacontenttype": "application/json",
                "actor": self.actor, "data": self.data}


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def record(conn: Connection, type: str, name: str, subject: str, data: Mapping[str, Any] | None = None) -> str:
    """Insert an event in the caller's open write transaction; its id."""
    event_id = uuid.uuid4().hex
    conn.execute(s.events.insert().values(id=event_id, type=type, subject=subject, source=f"/mlc/models/{name}",
                                          created_at=time.time(), actor=creator(), data=dict(data or {})))
    return event_id


def _event(row: Any) -> Event:
    return Event(int(row.seq), row.id, row.type, row.subject, row.source, float(row.created_at), row.actor,
                 dict(row.data or {}))


def read(engine: Engine, *, types: list[str] | None = None, since: float | None = None, after_seq: int = 0,
         limit: int | None = None, subject: str | None = None) -> list[Event]:
    """Events in the order they were recorded, filtered by type, time, position and subject."""
    query = sa.select(s.events).where(s.events.c.seq > after_seq).order_by(s.events.c.seq)
    if types:
        query = query.where(s.events.c.type.in_(types))
    if since is not None:
        query = query.where(s.events.c.created_at >= since)
    if subject is not None:
        query = query.where(s.events.c.subject == subject)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_event(row) for row in conn.execute(query)]


def last_seq(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(s.events.c.seq))).scalar() or 0)


def follow(engine: Engine, *, types: list[str] | None = None, since: float | None = None, poll_s: float = 0.5,
           stop: Any = None) -> Iterator[Event]:
    """Every matching event, then each new one as it is recorded (until `stop`, a threading.Event, is set)."""
    after = 0
    while stop is None or not stop.is_set():
        batch = read(engine, types=types, since=since, after_seq=after, limit=500)
        yield from batch
        if batch:
            after = batch[-1].seq
            continue
        if stop is not None:
            stop.wait(poll_s)
        else:
            time.sleep(poll_s)


def publish(registry: Any, type: str, name: str, subject: str, data: Mapping[str, Any] | None = None) -> str:
    """Record an event that is a change of its own (drift detected), in a write transaction of its own."""
    with registry._tx() as conn:
        return record(conn, type, name, subject, data)
