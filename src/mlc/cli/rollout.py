"""`mlc rollout`: a new traffic split for running servers, optionally a canary that aborts itself."""

from __future__ import annotations

import time
import urllib.request

import click

from mlc.cli._common import handle_errors
from mlc.errors import EXIT_ABORTED, MlcError


class RolloutAborted(MlcError):
    """An --abort-if guard held: the previous split is recorded again."""

    exit_code = EXIT_ABORTED


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=30) as response:
        return str(response.read().decode())


@click.command("rollout")
@click.option("--split", "split", required=True, metavar="NAME=REF:PCT,REF:PCT",
              help="The new shares of NAME's unversioned requests (the grammar of mlc serve --split).")
@click.option("--abort-if", "abort_if", multiple=True, metavar="GUARD",
              help="Watch the canary (versions whose share grows) and return all traffic to the previous split "
                   "if GUARD holds: \"error_rate > 0.01\" or \"p99_ms > 50\". Needs --url.")
@click.option("--url", help="The running server whose /metrics the guards read, e.g. http://127.0.0.1:8000.")
@click.option("--watch", "watch_s", type=click.FloatRange(0), default=600.0, show_default=True, metavar="SECONDS",
              help="How long to watch the guards before the rollout stands.")
@click.option("--every", "every_s", type=click.FloatRange(0.01), default=5.0, show_default=True, metavar="SECONDS",
              help="Seconds between reads of /metrics.")
@click.option("--min-requests", type=click.IntRange(1), default=100, show_default=True,
              help="Requests the canary must have answered before a guard is judged.")
@handle_errors
def rollout_cmd(split: str, abort_if: tuple[str, ...], url: str | None, watch_s: float, every_s: float,
                min_requests: int) -> None:
    """Record a new traffic split for NAME; every `mlc serve NAME` (or --split) server takes it at its
    next poll of the registry (--poll-interval, or SIGHUP), with no restart.

    With --abort-if, watch the canary on --url for --watch seconds: the first guard that holds
    puts the previous split back, records an mlc.model.rollout_aborted event saying why, and
    exits 6.
    """
    from mlc.errors import UsageError
    from mlc.lifecycle.rollout import abort, parse_guard, read_counts, start, tripped
    from mlc.registry import Registry
    from mlc.serve.split import parse_split

    spec = parse_split(split)
    guards = [parse_guard(text) for text in abort_if]
    if guards and not url:
        raise UsageError("--abort-if needs --url: the guards read the running server's /metrics",
                         "pass --url http://HOST:PORT of the mlc serve that serves the name")
    registry = Registry.open()
    before = read_counts(_scrape(url), spec.name) if guards and url else {}
    rollout = start(registry, spec, guarded=bool(guards))
    shares = ", ".join(f"{rollout.name}:{v} {p:g}%" for v, p in rollout.shares.items())
    click.echo(f"mlc rollout: deployment #{rollout.deployment} of {rollout.name}: {shares}; servers take it at "
               "their next poll")
    if not guards or not url:
        return
    canaries = ", ".join(f"{rollout.name}:{v}" for v in rollout.canaries)
    click.echo(f"  watching {canaries} on {url} for {watch_s:g}s: abort if {' or '.join(map(str, guards))}")
    deadline = time.monotonic() + watch_s
    while time.monotonic() < deadline:
        time.sleep(min(every_s, max(0.0, deadline - time.monotonic())))
        found = tripped(rollout, guards, before, read_counts(_scrape(url), spec.name), min_requests)
        if found is not None:
            guard, value, requests = found
            back = abort(registry, rollout, guard, value, requests)
            restored = ", ".join(f"{rollout.name}:{v} {p:g}%" for v, p in back.items())
            raise RolloutAborted(f"rollout of {canaries} aborted: {guard} held ({guard.metric} {value:.4g} over "
                                 f"{requests:.0f} requests); traffic back to {restored}",
                                 "see why with: mlc events --type rollout_aborted")
    click.echo(f"mlc rollout: no guard held in {watch_s:g}s; the split stands")
