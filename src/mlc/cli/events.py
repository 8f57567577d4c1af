"""`mlc events` (list and tail the lifecycle events) and `mlc hooks` (webhooks: add, list, remove, run).

    mlc events [--type T ...] [--since 24h|2024-05-01T00:00:00Z] [--follow] [--json]
    mlc hooks add URL [--type T ...] [--secret S]  /  mlc hooks list  /  mlc hooks remove ID
    mlc hooks run [--poll 1.0]     (the deliverer, for hosts that do not run mlc serve)
"""

from __future__ import annotations

import calendar
import json
import threading
import time
from typing import Any

import click

from mlc.cli._common import console, handle_errors, json_option, print_json
from mlc.errors import UsageError


def _since(text: str | None) -> float | None:
    """A duration back from now (24h, 90m, 7d) or an RFC 3339 UTC time, as unix seconds."""
    if text is None:
        return None
    if text[:4].isdigit() and "-" in text:
        for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
            try:
                return float(calendar.timegm(time.strptime(text, fmt)))
            except ValueError:
                continue
        raise UsageError(f"--since {text!r} is not a time", "write 2024-05-01, 2024-05-01T12:00:00Z or 24h")
    from mlc.monitor.window import parse_since

    return time.time() - parse_since(text)


def _line(event: Any) -> str:
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(event.created_at))}  {event.type:<26} "
            f"{event.subject:<24} {event.actor:<12} {event.id}")


@click.command("events")
@click.option("--type", "types", multiple=True, help="Only this type (mlc.model.registered or registered); repeatable.")
@click.option("--since", help="Only events newer than this: 24h, 90m, 7d, or a UTC time (2024-05-01T12:00:00Z).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as they are recorded (Ctrl-C to stop).")
@click.option("--limit", type=click.IntRange(1), help="At most this many (the oldest first).")
@click.option("--json", "as_json", is_flag=True, help="One CloudEvents 1.0 JSON object per line.")
@handle_errors
def events_cmd(types: tuple[str, ...], since: str | None, follow: bool, limit: int | None, as_json: bool) -> None:
    """Lifecycle events of the registry's models, oldest first: registered, optimized, profiled,
    deployed, undeployed, alias moved, deleted, drift detected."""
    from mlc.events import outbox
    from mlc.events.types import check_types
    from mlc.registry import Registry

    registry = Registry.open()
    chosen = check_types(list(types)) or None
    start = _since(since)

    def show(event: Any) -> None:
        if as_json:
            click.echo(json.dumps(event.to_cloudevent(), separators=(",", ":")))
        else:
            console.print(_line(event), markup=False, highlight=False)

    if not follow:
        found = outbox.read(registry.engine, types=chosen, since=start, limit=limit)
        if not as_json and not found:
            console.print("no events", markup=False)
        for event in found:
            show(event)
        return
    try:
        for event in outbox.follow(registry.engine, types=chosen, since=start):
            show(event)
    except KeyboardInterrupt:
        pass


@click.group("hooks")
def hooks_group() -> None:
    """Webhooks: each lifecycle event POSTed as CloudEvents JSON to the URLs added here.

    \b
    Deliveries run in mlc serve and in mlc hooks run; at-least-once (receivers drop
    duplicates by the event's id), retried with exponential backoff, every attempt recorded.
    """


@hooks_group.command("add")
@click.argument("url")
@click.option("--type", "types", multiple=True, help="Only events of this type (default: every type); repeatable.")
@click.option("--secret", help="Sign each body: header X-Mlc-Signature-256: sha256=HMAC-SHA256(secret, body).")
@json_option
@handle_errors
def hooks_add_cmd(url: str, types: tuple[str, ...], secret: str | None, as_json: bool) -> None:
    """Subscribe URL to the events recorded from now on."""
    from mlc.events.hooks import add_hook
    from mlc.registry import Registry

    hook = add_hook(Registry.open(), url, types, secret)
    if as_json:
        print_json(hook.to_dict())
    else:
        console.print(f"hook #{hook.id}: {hook.url} ({', '.join(hook.types) or 'every type'}"
                      f"{', signed' if secret else ''})", markup=False)


@hooks_group.command("list")
@click.option("--attempts", "show_attempts", is_flag=True, help="Also every delivery attempt, oldest first.")
@json_option
@handle_errors
def hooks_list_cmd(show_attempts: bool, as_json: bool) -> None:
    """Every hook (never its secret)."""
    from mlc.events.hooks import attempts, list_hooks
    from mlc.registry import Registry

    registry = Registry.open()
    hooks = [h.to_dict() for h in list_hooks(registry)]
    tried = attempts(registry) if show_attempts else []
    if as_json:
        print_json({"hooks": hooks, "attempts": tried} if show_attempts else hooks)
        return
    if not hooks:
        console.print("no hooks (add one: mlc hooks add URL)", markup=False)
    for h in hooks:
        console.print(f"#{h['id']}  {h['url']}  types: {', '.join(h['types'])}  {'signed' if h['signed'] else ''}",
                      markup=False)
    for a in tried:
        console.print(f"  hook #{a['hook']} {a['type']} {a['event']}: "
                      f"{a['status'] if a['status'] is not None else a['error']}", markup=False)


@hooks_group.command("remove")
@click.argument("hook_id", type=int)
@handle_errors
def hooks_remove_cmd(hook_id: int) -> None:
    """Unsubscribe hook ID (see mlc hooks list)."""
    from mlc.events.hooks import remove_hook
    from mlc.registry import Registry

    remove_hook(Registry.open(), hook_id)
    console.print(f"hook #{hook_id} removed", markup=False)


@hooks_group.command("run")
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between looks at the outbox when nothing is due.")
@handle_errors
def hooks_run_cmd(poll: float) -> None:
    """Deliver events to the hooks until interrupted (for a host that does not run mlc serve)."""
    import signal

    from mlc.events.deliver import Deliverer
    from mlc.registry import Registry

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print("mlc hooks: delivering (Ctrl-C to stop)", markup=False)
    Deliverer(Registry.open()).run(stop, poll)
    console.print("mlc hooks: stopped", markup=False)
