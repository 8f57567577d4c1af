"""Delivering events to webhooks: at-least-once, in order per hook, every attempt recorded.

For each hook the deliverer takes the oldest undelivered events due now, POSTs each one's
CloudEvents JSON (Content-Type application/cloudevents+json), and records the attempt. A 2xx
answer marks the event delivered for that hook; anything else (a status, a refused connection,
a timeout) schedules the next attempt after an exponential backoff (1 s, 2 s, 4 s, ... capped
at an hour; retried until it succeeds) and stops that hook's batch, so a receiver sees its
events in order. The attempt is recorded only after the POST returns: a deliverer killed in
between sends the event again when it restarts, which is why receivers must drop duplicates
by the event's id (at-least-once, never zero times).

With a secret, `X-Mlc-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (GitHub's scheme)
lets the receiver check the body came from a holder of the secret. The clock is injectable:
backoff tests move time instead of waiting. HTTP is urllib's, in the caller's thread: `mlc
serve` runs the deliverer in a thread of its own, so a receiver that never answers holds that
thread (up to the timeout), never a request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mlc.events.hooks import Hook, list_hooks
from mlc.events.outbox import Event, _event
from mlc.registry import _schema as s

log = logging.getLogger("mlc.hooks")
Clock = Callable[[], float]
SIGNATURE_HEADER = "X-Mlc-Signature-256"
# post(url, body, headers, timeout) -> HTTP status; raises OSError when no answer came.
Post = Callable[[str, bytes, dict[str, str], float], int]


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n + 1 after n failures: base * factor ** (n - 1), at most max_s."""

    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 3600.0

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.base_s * self.factor ** max(0, failures - 1)))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s) only: checked by add_hook
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Deliverer:
    """Sends the outbox to every hook (see the module docstring)."""

    def __init__(self, registry: Any, *, clock: Clock = time.time, post: Post = http_post,
                 backoff: Backoff | None = None, timeout_s: float = 10.0, batch: int = 100) -> None:
        self.registry = registry
        self.clock = clock
        self.post = post
        self.backoff = backoff or Backoff()
        self.timeout_s = timeout_s
        self.batch = batch

    def run_once(self) -> int:
        """One pass over every hook; how many attempts were made."""
        made = 0
        for hook in list_hooks(self.registry):
            for event in self._due(hook):
                made += 1
                if not self._attempt(hook, event):
                    break  # in order per hook: the rest wait for this one
        return made

    def run(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        """Until `stop` is set: pass after pass, waiting `poll_s` when there was nothing to send."""
        while not stop.is_set():
            try:
                made = self.run_once()
            except Exception:  # the registry briefly unreachable must not end delivery for good
                log.exception("hooks: a delivery pass failed; trying again")
                made = 0
            if not made:
                stop.wait(poll_s)

    def _due(self, hook: Hook) -> list[Event]:
        d = s.deliveries
        joined = s.events.outerjoin(d, (d.c.event_seq == s.events.c.seq) & (d.c.hook_id == hook.id))
        query = (sa.select(s.events).select_from(joined)
                 .where(s.events.c.seq > hook.after_seq, d.c.delivered_at.is_(None))
                 .order_by(s.events.c.seq).limit(self.batch))
        if hook.types:
            query = query.where(s.events.c.type.in_(hook.types))
        with self.registry.engine.connect() as conn:
            rows = conn.execute(query.add_columns(d.c.next_at.label("next_at"))).all()
        due = []
        now = self.clock()
        for row in rows:
            if row.next_at is not None and row.next_at > now:
                break  # the oldest undelivered event is not due yet: nothing after it goes first
            due.append(_event(row))
        return due

    def _attempt(self, hook: Hook, event: Event) -> bool:
        body = json.dumps(event.to_cloudevent(), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/cloudevents+json", "User-Agent": "mlc-hooks"}
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(hook.secret, body)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            status = self.post(hook.url, body, headers, self.timeout_s)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (OSError, ValueError) as exc:  # refused, reset, timed out, unreachable
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = (time.perf_counter() - started) * 1000
        self._record(hook, event, status, error, duration_ms)
        if error:
            log.warning("hooks: %s to %s failed (%s)", event.type, hook.url, error)
        return error is None

    def _record(self, hook: Hook, event: Event, status: int | None, error: str | None, duration_ms: float) -> None:
        now = self.clock()
        d = s.deliveries
        key = (d.c.hook_id == hook.id) & (d.c.event_seq == event.seq)
        with self.registry._tx() as conn:
            if not conn.execute(sa.select(s.hooks.c.id).where(s.hooks.c.id == hook.id)).first():
                return  # removed meanwhile
            failures = int(conn.execute(sa.select(d.c.attempts).where(key)).scalar() or 0)
            values = {"attempts": failures + 1, "last_status": status, "last_error": error,
                      "delivered_at": None if error else now,
                      "next_at": now + self.backoff.delay(failures + 1) if error else now}
            if conn.execute(d.update().where(key).values(**values)).rowcount == 0:
                conn.execute(d.insert().values(hook_id=hook.id, event_seq=event.seq, **values))
            conn.execute(s.delivery_attempts.insert().values(
                hook_id=hook.id, event_seq=event.seq, at=now, status=status, error=error, duration_ms=duration_ms))


def start_thread(registry: Any, poll_s: float = 1.0) -> tuple[threading.Thread, threading.Event]:
    """The deliverer on a daemon thread (as `mlc serve` runs it); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=Deliverer(registry).run, args=(stop, poll_s), name="mlc-hooks", daemon=True)
    thread.start()
    return thread, stop
