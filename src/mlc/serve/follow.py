"""A running server follows the registry: `mlc serve NAME@ALIAS` its alias, `mlc serve NAME` (or
--split) its recorded deployment, so `mlc promote` and `mlc rollout` reach it with no restart.

Each worker polls on its own (every --poll-interval seconds, and at once on SIGHUP, which the
supervisor forwards to every worker: the hook tests and operators use instead of the clock).
A version a poll finds newly routed is loaded and warmed in a thread while the old routing keeps
answering; the swap itself is one synchronous step on the event loop (DataPlane.swap), so each
request sees the old routing or the new one. Requests that chose a version before it left the
routes finish on it; it is closed once its last one is answered. A poll that fails (the registry
unreachable, a version that will not load) changes nothing and says why in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass

from mlc.config import load_settings
from mlc.registry import Registry
from mlc.serve.dataplane import DataPlane, ServedModel
from mlc.serve.plan import ServedVersion, ServePlan, spec_while_serving

_RETIRE_CHECK_S = 0.05  # how often a retired version is checked for requests still on it


@dataclass(frozen=True)
class Change:
    """What one poll found for one name: its routes now, and how to serve versions not yet loaded."""

    name: str
    shares: dict[int, float]
    new: tuple[ServedVersion, ...]
    why: str  # "iris@prod moved to iris:3", "deployment #4 of iris"


def log(message: str) -> None:
    """One line on the server's stderr (its log), whole, as the other workers' lines are."""
    sys.stderr.write(f"mlc serve: {message}\n")
    sys.stderr.flush()


def changes(plane: DataPlane, plan: ServePlan, registry: Registry) -> list[Change]:
    """The names whose routes in the registry differ from what this worker serves (blocking reads)."""
    found = []
    settings = None
    for name, alias in plan.follow.items():
        if alias is not None:
            named = registry.get(f"{name}@{alias}")
            why = f"{name}@{alias} moved to {named.ref}"
            wanted = [(named, 100.0)]
        else:
            deployment = registry.active_deployment(name)
            if not deployment:
                continue  # no deployment recorded: the server keeps what it started with
            why = f"the recorded deployment of {name} changed"
            wanted = [(registry.get(f"{name}:{v}"), p) for v, p in deployment.items()]
        shares: dict[int, float] = {}
        versions = {}
        for mv, percent in wanted:
            resolved = registry.served(mv)
            version = resolved.version
            shares[version.version] = shares.get(version.version, 0.0) + percent
            versions[version.version] = (version, resolved.note)
        if shares == plane.splits[name].shares:
            continue
        running = plane._default(name).spec
        settings = settings or load_settings()
        new = tuple(spec_while_serving(plan, mv, running, settings, note) for v, (mv, note) in versions.items()
                    if (name, v) not in plane.models)
        found.append(Change(name, shares, new, why))
    return found


class Follower:
    """Polls the registry for one worker's data plane and swaps what it serves when a route moves."""

    def __init__(self, plane: DataPlane, plan: ServePlan, worker: int) -> None:
        self.plane, self.plan, self.worker = plane, plan, worker
        self._wake = asyncio.Event()
        self._retiring: set[asyncio.Task[None]] = set()

    def poke(self) -> None:
        """Poll now (SIGHUP): called on the event loop."""
        self._wake.set()

    async def run(self) -> None:
        """Poll every plan.poll_interval seconds (0: only when poked) until cancelled."""
        interval = self.plan.poll_interval or None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            await self.poll()

    async def poll(self) -> list[str]:
        """One poll: load what moved, swap it in; the log lines it wrote (failures included, never raised)."""
        lines = []
        try:
            found = await asyncio.to_thread(changes, self.plane, self.plan, Registry.open())
        except Exception as exc:
            lines.append(f"worker {self.worker}: polling the registry failed, serving on unchanged: {exc}")
            found = []
        for change in found:
            try:
                added = {}
                for spec in change.new:
                    model = await asyncio.to_thread(DataPlane.load_version, spec, self.plan, self.plane.board)
                    added[(spec.name, spec.version)] = model
                    lines.append(f"worker {self.worker}: loaded and warmed {spec.ref}; its layout: "
                                 f"{spec.layout_from}" + (f" ({spec.note})" if spec.note else ""))
            except Exception as exc:
                lines.append(f"worker {self.worker}: {change.why}, but loading it failed; serving on unchanged: "
                             f"{exc}")
                continue
            retired = self.plane.swap(change.name, change.shares, added, self.plan.pinned)
            routes = ", ".join(f"{change.name}:{v} {p:g}%" for v, p in change.shares.items())
            lines.append(f"worker {self.worker}: {change.why}: /v2/models/{change.name} -> {routes}")
            for model in retired:
                task = asyncio.ensure_future(self._retire(model))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        for line in lines:
            log(line)
        return lines

    async def _retire(self, model: ServedModel) -> None:
        """Close a version out of every route once the requests that chose it are answered."""
        while model.active:
            await asyncio.sleep(_RETIRE_CHECK_S)
        await asyncio.to_thread(model.batcher.close)

    async def close(self) -> None:
        """Finish retiring: every retired version's batcher closed."""
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
