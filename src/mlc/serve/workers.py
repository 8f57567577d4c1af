"""Worker processes: each loads its own sessions and batchers and listens on the shared port.

With several workers every process binds the same address with SO_REUSEPORT, so the kernel
spreads connections across them; the parent holds the port (bound, never listening, so it
gets no connections) from before the first worker starts until the last one exits, which
also resolves --port 0 to one port for all. Workers are spawned, not forked, so no ONNX
Runtime thread pool is copied half-initialised into a child. The parent forwards SIGINT and
SIGTERM once to each worker, whose server then finishes in-flight requests and drains its
batchers, and restarts a worker that dies while serving.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from mlc.errors import MlcError, UsageError
from mlc.serve.metrics import Layout, MetricsBoard
from mlc.serve.plan import ServePlan

GRACE_SECONDS = 30  # how long in-flight requests get to finish after SIGTERM
_START_TIMEOUT = 300  # loading and warming every model
_RESTART_BACKOFF = 5.0  # seconds between restarts of one worker
_PR_SET_PDEATHSIG = 1


def layout_of(plan: ServePlan) -> Layout:
    return Layout(keys=tuple((v.name, v.version) for v in plan.versions),
                  max_batch_size=max(v.batch.max_batch_size for v in plan.versions))


def bind(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT (so every worker can bind the same port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {host!r} is not an address of this machine "
                         f"({exc.strerror or exc})", "pass --host 127.0.0.1, 0.0.0.0 or one of its addresses") from exc
    try:
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         "pick another --port, or stop what is using this one") from exc
    if listen:
        sock.listen(2048)
        sock.setblocking(False)
    return sock


def _serve(plan: ServePlan, sock: socket.socket, metrics_dir: Path, worker: int,
           on_loaded: Callable[[], None]) -> None:
    """Load the models, then serve on `sock` until SIGINT/SIGTERM; drains before returning."""
    import uvicorn

    from mlc.serve.app import V2App
    from mlc.serve.dataplane import DataPlane

    board = MetricsBoard(metrics_dir, worker, layout_of(plan))
    dataplane = DataPlane.load(plan, board)
    config = uvicorn.Config(
        V2App(dataplane, plan.max_request_bytes), loop="uvloop", http="httptools", lifespan="on",
        access_log=False, server_header=False, log_level="warning", timeout_graceful_shutdown=GRACE_SECONDS)
    on_loaded()
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; a no-op
    # handler lets the caller's clean-up run and the process exit 0 instead of dying by signal.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(_signum: int, _frame: Any) -> None:
    """A signal handler that does nothing (see _serve)."""


def _worker_main(plan: ServePlan, metrics_dir: str, worker: int, parent: int, events: Any) -> None:
    """Entry point of a spawned worker: own process group (the terminal's Ctrl-C reaches only the
    parent, which forwards it once), and it dies with the parent rather than serving orphaned."""
    os.setpgrp()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return
    try:
        sock = bind(plan.host, plan.port, listen=True)
        _serve(plan, sock, Path(metrics_dir), worker, lambda: events.put(("ready", worker, "")))
    except MlcError as exc:
        events.put(("error", worker, str(exc)))
    except Exception as exc:
        events.put(("error", worker, f"{type(exc).__name__}: {exc}"))
        raise


class _Supervisor:
    """Starts the workers, waits for them to load, restarts crashed ones, stops them all on a signal."""

    def __init__(self, plan: ServePlan, metrics_dir: Path) -> None:
        self.plan = plan
        self.metrics_dir = metrics_dir
        self.context = multiprocessing.get_context("spawn")
        self.events = self.context.Queue()
        self.procs: dict[int, BaseProcess] = {}
        self.stopping = False

    def start(self, worker: int) -> None:
        proc = self.context.Process(
            target=_worker_main, name=f"mlc-serve-worker-{worker}",
            args=(self.plan, str(self.metrics_dir), worker, os.getpid(), self.events))
        proc.start()
        self.procs[worker] = proc

    def wait_ready(self, workers: list[int]) -> None:
        pending = set(workers)
        deadline = time.monotonic() + _START_TIMEOUT
        while pending and not self.stopping:
            if time.monotonic() > deadline:
                raise MlcError(f"workers {sorted(pending)} did not load their models in {_START_TIMEOUT}s")
            try:
                kind, worker, message = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "error":
                raise MlcError(f"worker {worker} failed to start: {message}")
            pending.discard(worker)

    def watch(self) -> None:
        """Until a signal: restart any worker that exits while the server is meant to run,
        at most once every few seconds each, so a worker that cannot start does not spin."""
        restarted: dict[int, float] = {}
        while not self.stopping:
            time.sleep(0.2)
            for worker, proc in list(self.procs.items()):
                due = restarted.get(worker, 0.0) + _RESTART_BACKOFF < time.monotonic()
                if not proc.is_alive() and not self.stopping and due:
                    restarted[worker] = time.monotonic()
                    self.start(worker)

    def stop(self) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS + 10
        for proc in self.procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def serve(plan: ServePlan, on_ready: Callable[[int], None]) -> None:
    """Serve `plan` until SIGINT/SIGTERM; on_ready(port) is called once every worker listens."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="mlc-serve-metrics-"))
    try:
        if plan.workers == 1:
            sock = bind(plan.host, plan.port, listen=True)
            port = sock.getsockname()[1]
            _serve(plan, sock, metrics_dir, 0, lambda: on_ready(port))
            return
        holder = bind(plan.host, plan.port, listen=False)
        plan = replace(plan, port=holder.getsockname()[1])
        supervisor = _Supervisor(plan, metrics_dir)

        def _stop(signum: int, _frame: Any) -> None:
            supervisor.stopping = True

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for worker in range(plan.workers):
                supervisor.start(worker)
            supervisor.wait_ready(list(range(plan.workers)))
            on_ready(plan.port)
            supervisor.watch()
        finally:
            supervisor.stop()
            holder.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
