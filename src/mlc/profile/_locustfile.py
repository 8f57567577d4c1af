"""The locustfile `mlc profile --mode http` runs: loaded only by `locust -f` in its own processes.

Never import this module from mlc: locust monkey-patches the standard library with gevent at
import time, which breaks threads, sockets and ONNX Runtime in the importing process.

Open-loop load with locust: every load process draws its own share of the arrival times
(mlc.profile.arrivals) before its first send, and its users, a pool much larger than the
requests in flight, take the next due time from that schedule, wait for it and send. A slow
answer delays no later send, and latency is fired to locust's stats from the SCHEDULED time,
so locust's own CSV stats count queueing too. Raw timings go to one .npz per process for exact percentiles.

A stage whose p99 misses the SLO ends the run (the next, higher rates would only pile up
queues), as does a schedule that falls too far behind. In distributed mode (--processes)
the worker that sees it tells the master, whose shape then stops every worker.

Configuration: JSON in the MLC_PROFILE_LOCUST environment variable (see loadgen_http.py).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import numpy as np
from locust import LoadTestShape, User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from mlc.profile.arrivals import ladder_offsets
from mlc.testhooks import PAUSE_AT_ENV, announce_pause

CFG: dict[str, Any] = json.loads(os.environ["MLC_PROFILE_LOCUST"])
# Inline in a distributed run (its workers may be on hosts without the master's files), else a file.
BODIES = [line.encode() for line in (CFG["bodies"] if isinstance(CFG["bodies"], list)
                                     else Path(CFG["bodies"]).read_text().splitlines()) if line]
ABORT_MESSAGE = "mlc_profile_abort"
RECORDS_MESSAGE = "mlc_profile_records"  # a worker's raw timings, sent to the master (distributed runs)
_RECORD_KEYS = ("scheduled", "sent", "done", "ok", "stage")


class Schedule:
    """This process's arrival times and, per slot, when it was sent and answered."""

    def __init__(self) -> None:
        self.offsets = self.sent = self.done = np.empty(0)
        self.stage = np.empty(0, dtype=np.int64)
        self.ok = np.empty(0, dtype=bool)
        self.next = 0
        self.t0: float | None = None
        self.aborted = False
        self.aborted_at = np.inf  # seconds from t0
        self.stopped_at: float | None = None  # seconds from t0 when the run ended for this process
        self.paused = False  # tests only (PAUSE_AT_S): nothing more is sent; the run waits for Ctrl-C
        self.paused_at = np.inf  # seconds from t0: a paused run counts as stopped here
        self.reason = ""
        self._checked_stage = 0
        self.sent_records = False  # a distributed worker sends its records to the master once

    def take(self) -> tuple[int, float] | None:
        """The next slot and its due time (perf_counter), or None when the schedule is over.

        Users are greenlets of one thread, so no lock is needed.
        """
        if self.t0 is None:
            self._draw()
            self.t0 = time.perf_counter()
        now = time.perf_counter()
        if self.aborted or self.next >= self.offsets.size:
            return None
        if self.paused:
            return None
        i = self.next
        if now - (self.t0 + self.offsets[i]) > CFG["abort_lag_s"]:
            self.abort(f"the schedule fell {now - self.t0 - self.offsets[i]:.1f} s behind")
            return None
        if CFG["stop_on_fail"] and self.stage[i] > self._checked_stage:
            self._check_stage(self.stage[i] - 1, now - self.t0)
            if self.aborted:
                return None
        self.next += 1
        return i, self.t0 + self.offsets[i]

    def _draw(self) -> None:
        """Draw this process's share of the arrivals, with a seed of its own.

        Drawn at the first send, not at import: locust's --processes forks its workers after
        importing this file, so a schedule drawn at import would be the same in every worker
        (each arrival sent once per worker at the same instant, not a Poisson process).
        """
        runner = ENV.runner if ENV is not None else None
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        share = [(rate / CFG["processes"], duration) for rate, duration in CFG["stages"]]
        self.offsets, self.stage = ladder_offsets(share, poisson=CFG["poisson"], seed=CFG["seed"] + 7919 * index)
        if not CFG["poisson"]:
            # Constant gaps are the same in every process: stagger them so that together they
            # send one request every 1/rate, not all of them at once every processes/rate.
            rates = np.array([rate for rate, _ in CFG["stages"]], dtype=np.float64)
            self.offsets = self.offsets + index / rates[self.stage]
        n = self.offsets.size
        self.sent = np.full(n, np.nan)
        self.done = np.full(n, np.nan)
        self.ok = np.zeros(n, dtype=bool)

    def _check_stage(self, stage: int, elapsed: float) -> None:
        """End the run if the stage just finished missed the SLO (unanswered requests count as late);
        `elapsed` is now, in seconds from t0."""
        self._checked_stage = int(stage) + 1
        mask = (self.stage[: self.next] == stage) & (self.offsets[: self.next] >= CFG["warmup_s"] + self._start(stage))
        if not mask.any():
            return
        finished = np.where(np.isfinite(self.done[: self.next]), self.done[: self.next], elapsed)
        latency_ms = (finished - self.offsets[: self.next])[mask] * 1e3
        failed = (np.isfinite(self.done[: self.next]) & ~self.ok[: self.next])[mask].any()
        if failed or np.percentile(latency_ms, 99) > CFG["slo_ms"]:
            self.abort(f"stage {stage + 1} missed the SLO")

    def _start(self, stage: int) -> float:
        return float(sum(duration for _, duration in CFG["stages"][:stage]))

    def pausing(self, i: int) -> bool:
        """Tests only: whether slot i, now due, falls where a test asked the run to pause (and then pause).

        The run counts as stopped at the pause: no slot due from then on is sent, as if Ctrl-C had
        landed exactly there, and the shape keeps the run open until the real Ctrl-C comes.
        """
        if PAUSE_AT_S is None or self.offsets[i] < PAUSE_AT_S:
            return False
        if not self.paused:
            self.paused, self.paused_at = True, PAUSE_AT_S
            announce_pause(f"locust-stage-{int(self.stage[i]) + 1}")
        return True

    def abort(self, reason: str) -> None:
        if self.aborted:
            return
        self.aborted, self.reason = True, reason
        if self.t0 is not None:
            self.aborted_at = time.perf_counter() - self.t0
        runner = ENV.runner if ENV is not None else None
        if isinstance(runner, WorkerRunner):
            runner.send_message(ABORT_MESSAGE, {"reason": reason})

    def dump(self) -> None:
        runner = ENV.runner if ENV is not None else None
        # A distributed worker sends its records to the master instead of writing them.
        worker = runner if CFG.get("send_records") and isinstance(runner, WorkerRunner) else None
        if self.t0 is None or self.next == 0:
            if worker is not None and not self.sent_records:  # the master counts every worker before it quits
                self.sent_records = True
                worker.send_message(RECORDS_MESSAGE, {"host": socket.gethostname(), "pid": os.getpid()})
            return  # the master of a distributed run, or a process that never got a user
        if self.stopped_at is None:  # the first dump (test_stop) decides; quitting dumps again later
            self.stopped_at = min(self.aborted_at, self.paused_at, time.perf_counter() - self.t0)
        # Slots that fell due before the run stopped (an abort, its end, Ctrl-C, or the master
        # stopping this worker) but were never sent count as failed requests; later ones were
        # never part of the run unless sent, also those a user had taken ahead of their time
        # (counted, they failed the stage Ctrl-C ended and, from the next stage, kept it in the
        # report), and stages that never began leave no record.
        n = max(self.next, int(np.searchsorted(self.offsets, self.stopped_at)))
        keep = (self.offsets[:n] < self.stopped_at) | np.isfinite(self.sent[:n])
        arrays = {"scheduled": self.offsets[:n][keep], "sent": self.sent[:n][keep], "done": self.done[:n][keep],
                  "ok": self.ok[:n][keep], "stage": self.stage[:n][keep]}
        if worker is not None:
            if not self.sent_records:
                # Another host's perf_counter is not the master's: send how long ago t0 was instead.
                self.sent_records = True
                worker.send_message(RECORDS_MESSAGE, {
                    "host": socket.gethostname(), "pid": os.getpid(), "reason": self.reason,
                    "since_t0": time.perf_counter() - self.t0, **{k: v.tolist() for k, v in arrays.items()}})
            return
        # Numbers and strings only, as np.load reads them back (without pickles).
        np.savez(Path(CFG["out_dir"]) / f"records-{os.getpid()}.npz", allow_pickle=False, **arrays,
                 t0=np.array(self.t0), reason=np.array(self.reason), host=np.array(socket.gethostname()))


class Connection:
    """One keep-alive HTTP/1.1 connection with prebuilt requests: the least client work per request.

    locust's HTTP clients parse and build far more than a v2 call needs, and that time lands
    inside the measured latency (a third of a millisecond against a sub-millisecond server).
    Each user owns one connection, so it never waits for a pooled one.
    """

    def __init__(self) -> None:
        self._sock: Any = None
        self._buffer = b""

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buffer = None, b""

    def connect(self) -> None:
        self._sock = gevent.socket.create_connection((CFG["host"], CFG["port"]), timeout=CFG["timeout_s"])
        self._sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)

    def post(self, request: bytes) -> tuple[int, bytes]:
        if self._sock is None:
            self.connect()
        self._sock.sendall(request)
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        headers = head.lower()
        marker = headers.find(b"\r\ncontent-length:")
        if marker < 0:
            raise RuntimeError("the reply has no Content-Length (chunked replies are not supported)")
        end = headers.find(b"\r\n", marker + 2)
        length = int(headers[marker + 17 : end if end > 0 else len(headers)])
        self._buffer = rest
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        if b"\r\nconnection: close" in headers:
            self.close()
        return int(head[9:12]), body

    def _receive(self) -> None:
        chunk = self._poll() if POLL else self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk


    def _poll(self) -> bytes:
        """recv by polling for up to POLL_S (other greenlets run between tries), then by waiting.

        A wake-up through the event loop adds a tenth of a millisecond or two to each answer, a
        fifth of a sub-millisecond server's latency. Polling burns this process's core, so it is
        on only where that core is not the server's (POLL) and capped for a slow answer.
        """
        until = time.perf_counter() + POLL_S
        self._sock.settimeout(0.0)
        try:
            while time.perf_counter() < until:
                try:
                    return bytes(self._sock.recv(65536))
                except BlockingIOError:
                    gevent.sleep(0)
        finally:
            self._sock.settimeout(CFG["timeout_s"])
        return bytes(self._sock.recv(65536))


def _requests() -> list[bytes]:
    head = (f"POST {CFG['path']} HTTP/1.1\r\nHost: {CFG['host']}:{CFG['port']}\r\n"
            "Content-Type: application/json\r\n")
    return [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in BODIES]


def _pause_at_s() -> float | None:
    """Tests only: seconds from t0 where MLC_TEST_PAUSE_AT=locust-stage-K pauses: halfway through stage K."""
    stage = os.environ.get(PAUSE_AT_ENV, "")
    prefix = "locust-stage-"
    if not stage.startswith(prefix):
        return None
    k = int(stage[len(prefix):]) - 1
    return sum(duration for _, duration in CFG["stages"][:k]) + CFG["stages"][k][1] / 2


def _wait_until(due: float) -> None:
    """Sleep until `due`; at low rates, yield-spin through the last millisecond.

    gevent's timers fire on the event loop's millisecond ticks, so a plain sleep sends ~0.5 ms
    late on average, latency that is the generator's, not the server's. Spinning costs up to
    a millisecond of CPU per request, so it is spent only while the process's rate leaves CPU
    to spare.
    """
    delay = due - time.perf_counter()
    if not PRECISE:
        if delay > 0:
            gevent.sleep(delay)
        return
    if delay > 0.0015:
        gevent.sleep(delay - 0.0015)
    while time.perf_counter() < due:
        gevent.sleep(0)


SCHEDULE = Schedule()
ENV: Any = None
REQUESTS = _requests()
PRECISE = max(rate for rate, _ in CFG["stages"]) / CFG["processes"] <= CFG["precise_below_rps"]
POLL = PRECISE and CFG["apart"]  # the generator runs on cores the server does not use
POLL_S = 0.002
PAUSE_AT_S = _pause_at_s()  # None outside tests


class InferUser(User):
    """Sends whatever slot is due next; never paces itself on its own previous answer."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Connect before the first slot, so no request's latency includes a TCP handshake."""
        self.connection = Connection()
        try:
            self.connection.connect()
        except OSError:
            self.connection.close()  # the first request retries, and reports the failure if it persists

    @task
    def infer(self) -> None:
        slot = SCHEDULE.take()
        if slot is None:
            gevent.sleep(0.05)  # the run is over for this process; the shape stops it shortly
            return
        i, due = slot
        _wait_until(due)
        if PAUSE_AT_S is not None and SCHEDULE.pausing(i):
            return
        body = b""
        error: Exception | None = None
        sent = time.perf_counter()
        try:
            status, body = self.connection.post(REQUESTS[i % len(REQUESTS)])
            if status != 200:
                error = RuntimeError(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        except Exception as exc:  # a refused or dropped connection is an error of this request
            self.connection.close()
            error = exc
        finished = time.perf_counter()
        offset = SCHEDULE.offsets[i] - due  # perf_counter -> seconds from this process's t0
        SCHEDULE.sent[i] = sent + offset
        SCHEDULE.done[i] = finished + offset
        SCHEDULE.ok[i] = error is None
        self.environment.events.request.fire(
            request_type="POST", name="infer", response_time=(finished - due) * 1e3,
            response_length=len(body), exception=error, context={})


class LadderShape(LoadTestShape):
    """All users at once for the ladder's length plus a drain; stops early on an abort."""

    def tick(self) -> tuple[int, float] | None:
        if SCHEDULE.aborted or (self.get_run_time() > CFG["run_s"] and not SCHEDULE.paused):
            return None
        return CFG["users"], float(CFG["users"]) * 20


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    global ENV
    ENV = environment
    if isinstance(environment.runner, MasterRunner):
        # locust calls a handler as handler(environment=..., msg=...)
        environment.runner.register_message(ABORT_MESSAGE, lambda msg, **__: SCHEDULE.abort(msg.data["reason"]))
        environment.runner.register_message(RECORDS_MESSAGE, lambda msg, **__: _receive_records(msg.data))


RECEIVED: list[str] = []  # master: the workers whose records arrived, as host/pid


def _receive_records(data: dict[str, Any]) -> None:
    """Master: write a worker's records where a local worker would have (loadgen_http reads them)."""
    key = f"{data['host']}/{data['pid']}"
    if key in RECEIVED:
        return
    RECEIVED.append(key)
    if "scheduled" not in data:
        return  # a worker that never sent a request
    arrays = {k: np.asarray(data[k], dtype=bool if k == "ok" else np.int64 if k == "stage" else np.float64)
              for k in _RECORD_KEYS}
    np.savez(Path(CFG["out_dir"]) / f"records-{data['host']}-{data['pid']}.npz", allow_pickle=False, **arrays,
             t0=np.array(time.perf_counter() - float(data["since_t0"])), reason=np.array(data["reason"]),
             host=np.array(data["host"]))


def _await_records(timeout_s: float = 15.0) -> None:
    """Master: before quitting, wait for every worker's records (they come after the workers stop)."""
    until = time.perf_counter() + timeout_s
    while len(RECEIVED) < CFG["processes"] and time.perf_counter() < until:
        gevent.sleep(0.05)


@events.test_stop.add_listener
def _on_stop(**_: Any) -> None:
    SCHEDULE.dump()


@events.quitting.add_listener
def _on_quit(**_: Any) -> None:
    if CFG.get("send_records") and isinstance(ENV.runner if ENV is not None else None, MasterRunner):
        _await_records()
    SCHEDULE.dump()
