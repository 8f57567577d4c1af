"""Webhook subscriptions, kept in the registry so every host that reads it delivers the same set.

A hook receives the events recorded after it was added (not the history before it), of the
types it names (every type when none), by HTTP POST. Its secret, when set, is stored as given:
the deliverer needs it to sign each body (HMAC-SHA256), as GitHub and Stripe keep theirs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa

from mlc.errors import NotFoundError, UsageError
from mlc.events.outbox import last_seq
from mlc.events.types import check_types
from mlc.registry import _schema as s


@dataclass(frozen=True)
class Hook:
    id: int
    url: str
    types: list[str]  # empty: every type
    secret: str | None
    after_seq: int  # events after this one are delivered
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """What `mlc hooks list` shows: never the secret itself."""
        return {"id": self.id, "url": self.url, "types": self.types or ["*"], "signed": self.secret is not None,
                "created_at": self.created_at}


def _check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"{url!r} is not an http(s) URL", "give the receiver's full URL, e.g. https://host/hook")
    return url


def add_hook(registry: Any, url: str, types: tuple[str, ...] | list[str] = (), secret: str | None = None) -> Hook:
    """Subscribe URL to future events of these types (all types when none)."""
    if secret is not None and not secret:
        raise UsageError("an empty --secret signs nothing", "give a secret, or leave --secret out")
    checked_url, checked_types, created_at = _check_url(url), check_types(list(types)), time.time()
    with registry._tx() as conn:
        after_seq = last_seq(conn)
        inserted = conn.execute(s.hooks.insert().values(
            url=checked_url, types=checked_types, secret=secret, created_at=created_at,
            after_seq=after_seq)).inserted_primary_key
    if inserted is None:
        raise RuntimeError("internal error: the database returned no id for the new hook")
    return Hook(int(inserted[0]), checked_url, checked_types, secret, after_seq, created_at)


def _hook(row: Any) -> Hook:
    return Hook(int(row.id), row.url, list(row.types or []), row.secret, int(row.after_seq), float(row.created_at))


def list_hooks(registry: Any) -> list[Hook]:
    with registry.engine.connect() as conn:
        return [_hook(r) for r in conn.execute(sa.select(s.hooks).order_by(s.hooks.c.id))]


def remove_hook(registry: Any, hook_id: int) -> None:
    """Unsubscribe; its delivery records go with it."""
    with registry._tx() as conn:
        conn.execute(s.delivery_attempts.delete().where(s.delivery_attempts.c.hook_id == hook_id))
        conn.execute(s.deliveries.delete().where(s.deliveries.c.hook_id == hook_id))
        gone = conn.execute(s.hooks.delete().where(s.hooks.c.id == hook_id)).rowcount
    if not gone:
        raise NotFoundError(f"no hook #{hook_id}", "list them with: mlc hooks list")


def attempts(registry: Any, hook_id: int | None = None) -> list[dict[str, Any]]:
    """Every recorded delivery attempt (oldest first): hook, event, when, HTTP status or error."""
    query = sa.select(s.delivery_attempts, s.events.c.id.label("event_id"), s.events.c.type).join(
        s.events, s.events.c.seq == s.delivery_attempts.c.event_seq).order_by(s.delivery_attempts.c.id)
    if hook_id is not None:
        query = query.where(s.delivery_attempts.c.hook_id == hook_id)
    with registry.engine.connect() as conn:
        return [{"hook": r.hook_id, "event": r.event_id, "type": r.type, "at": r.at, "status": r.status,
                 "error": r.error, "duration_ms": r.duration_ms} for r in conn.execute(query)]
