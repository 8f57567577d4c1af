"""Worker processes: each loads its own sessions and batchers and listens on the shared port(s).

With several workers every process binds the same address with SO_REUSEPORT, so the kernel
spreads connections across them; the parent holds the port (bound, never listening, so it
gets no connections) from before the first worker starts until the last one exits, which
also resolves --port 0 to one port for all. The gRPC port, when asked for, is held and shared
the same way. Each worker runs its HTTP and gRPC servers on one event loop, over one data
plane. Workers are spawned, not forked, so no ONNX Runtime thread pool is copied
half-initialised into a child. The parent forwards SIGINT and SIGTERM once to each worker,
whose servers then finish in-flight requests (both transports at once) before its batchers
drain, and restarts a worker that dies while serving. SIGHUP asks every worker to poll the
registry now (serve/follow.py): the parent forwards it, as it does the stopping signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
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
from mlc.serve.metrics import SPARE_ROWS, Layout, MetricsBoard
from mlc.serve.plan import ServePlan

GRACE_SECONDS = 30  # how long in-flight requests get to finish after SIGTERM
_START_TIMEOUT = 300  # loading and warming every model
_RESTART_BACKOFF = 5.0  # seconds between restarts of one worker
_PR_SET_PDEATHSIG = 1


def layout_of(plan: ServePlan) -> Layout:
    """The metric rows: one per planned version (the --shadow candidate's counts its batches), and spare
    ones when the plan follows the registry."""
    versions = (*plan.versions, *((plan.shadow.version,) if plan.shadow else ()))
    return Layout(keys=tuple((v.name, v.version) for v in versions),
                  max_batch_size=max(v.layout.max_batch_size for v in versions),
                  spare=SPARE_ROWS if plan.follow else 0)


def bind(host: str, port: int, *, listen: bool, flag: str = "--port") -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT (so every worker can bind the same port); `flag` is the
    option the port came from, for the error."""
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
                         f"pick another {flag}, or stop what is using this one") from exc
    if listen:
        sock.listen(2048)
        sock.setblocking(False)
    return sock


def _serve(plan: ServePlan, sock: socket.socket, metrics_dir: Path, worker: int,
           on_loaded: Callable[[], None]) -> None:
    """Load the models, then serve HTTP on `sock` (and gRPC on plan.grpc_port when set) until
    SIGINT/SIGTERM; both transports drain before the batchers do."""
    import uvicorn
    import uvloop

    from mlc.serve.app import V2App
    from mlc.serve.dataplane import DataPlane

    # SIGHUP means "poll the registry now" (serve/follow.py), never "die": ignored from before
    # the models load until the follower, if any, takes it on the event loop.
    hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    board = MetricsBoard(metrics_dir, worker, layout_of(plan))
    dataplane = DataPlane.load(plan, board)
    security = plan.security
    config = uvicorn.Config(
        V2App(dataplane, plan.max_request_bytes, security.api_key), loop="uvloop", http="httptools",
        lifespan="off", access_log=False, server_header=False, log_level="warning",
        timeout_graceful_shutdown=GRACE_SECONDS,
        ssl_certfile=str(security.tls_cert) if security.tls_cert else None,
        ssl_keyfile=str(security.tls_key) if security.tls_key else None)
    server = uvicorn.Server(config)

    # uvicorn takes SIGINT/SIGTERM while it serves and re-raises the one that stopped it once it
    # has shut down gracefully; this handler, in place before and after, lets the caller's
    # clean-up run and the process exit 0 instead of dying by signal, and a signal that comes
    # before uvicorn listens still stops the server.
    def _stop(_signum: int, _frame: Any) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = hup
    try:
        uvloop.run(_run(server, sock, dataplane, plan, on_loaded, worker))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _run(server: Any, sock: socket.socket, dataplane: Any, plan: ServePlan,
               on_loaded: Callable[[], None], worker: int = 0) -> None:
    """Both transports on this loop; once uvicorn is told to exit, gRPC drains beside HTTP (each
    within GRACE_SECONDS), and only then are the batchers closed. With routes that follow the
    registry, a Follower polls it on this loop too (SIGHUP: poll now)."""
    grpc_server = None
    following = None
    follower = None
    if plan.follow:
        from mlc.serve.follow import Follower

        follower = Follower(dataplane, plan, worker)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, follower.poke)
        following = asyncio.ensure_future(follower.run())
    try:
        if plan.grpc_port is not None:
            from mlc.serve.grpc_server import GrpcServer

            grpc_server = await GrpcServer.start(dataplane, plan.host, plan.grpc_port, plan.security,
                                                 plan.max_request_bytes)
        # What is loaded by now (modules, models, the app) lives as long as the process. Frozen out
        # of the collector's sight, a full collection walks only what serving allocates since; left
        # in, every full collection walks it all: 90-120 ms pauses of the event loop under load,
        # which were the p99 of one worker (benchmarks/results/serve_tail.md).
        gc.freeze()
        on_loaded()
        drained = asyncio.ensure_future(_drain_grpc_on_exit(server, grpc_server))
        try:
            await server.serve(sockets=[sock])
        finally:
            server.should_exit = True
            await drained
    finally:
        if following is not None and follower is not None:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            await follower.close()
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await asyncio.to_thread(dataplane.close)


async def _drain_grpc_on_exit(server: Any, grpc_server: Any) -> None:
    while not server.should_exit:  # uvicorn polls the same flag every 0.1 s
        await asyncio.sleep(0.1)
    if grpc_server is not None:
        await grpc_server.stop(GRACE_SECONDS)


def _worker_main(plan: ServePlan, metrics_dir: str, worker: int, parent: int, events: Any) -> None:
    """Entry point of a spawned worker: own process group (the terminal's Ctrl-C reaches only the
    parent, which forwards it once), and it dies with the parent rather than serving orphaned."""
    os.setpgrp()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # "poll now" (serve/follow.py), never "die" while loading
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

    def forward(self, signum: int) -> None:
        """Send `signum` to every live worker (SIGHUP: poll the registry now)."""
        for proc in self.procs.values():
            if proc.is_alive() and proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)

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


def _hold_grpc_port(plan: ServePlan) -> tuple[ServePlan, socket.socket | None]:
    """Bind (never listen on) the gRPC port, resolving 0, so every worker's server shares it."""
    if plan.grpc_port is None:
        return plan, None
    if plan.grpc_port == plan.port:
        raise UsageError(f"--grpc-port {plan.grpc_port} is also the HTTP --port",
                         "give gRPC a port of its own (Triton uses 8000 for HTTP and 8001 for gRPC)")
    holder = bind(plan.host, plan.grpc_port, listen=False, flag="--grpc-port")
    return replace(plan, grpc_port=holder.getsockname()[1]), holder


def serve(plan: ServePlan, on_ready: Callable[[ServePlan], None]) -> None:
    """Serve `plan` until SIGINT/SIGTERM; on_ready(plan, with its ports resolved) is called once
    every worker listens."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="mlc-serve-metrics-"))
    holders: list[socket.socket] = []
    try:
        if plan.workers == 1:
            sock = bind(plan.host, plan.port, listen=True)
            holders.append(sock)
            plan, grpc_holder = _hold_grpc_port(replace(plan, port=sock.getsockname()[1]))
            holders.extend([grpc_holder] if grpc_holder else [])
            _serve(plan, sock, metrics_dir, 0, lambda: on_ready(plan))
            return
        holder = bind(plan.host, plan.port, listen=False)
        holders.append(holder)
        plan, grpc_holder = _hold_grpc_port(replace(plan, port=holder.getsockname()[1]))
        holders.extend([grpc_holder] if grpc_holder else [])
        supervisor = _Supervisor(plan, metrics_dir)

        def _stop(signum: int, _frame: Any) -> None:
            supervisor.stopping = True

        def _poll(signum: int, _frame: Any) -> None:
            supervisor.forward(signal.SIGHUP)

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _poll)
        try:
            for worker in range(plan.workers):
                supervisor.start(worker)
            supervisor.wait_ready(list(range(plan.workers)))
            on_ready(plan)
            supervisor.watch()
        finally:
            supervisor.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        for sock in holders:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
