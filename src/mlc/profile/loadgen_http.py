"""HTTP load with locust: `mlc serve` (or any KServe v2 URL, Triton included) driven open-loop.

Locust runs as a subprocess (`python -m locust -f _locustfile.py --headless ...`), never
imported here: its gevent monkey-patching would break this process's threads and ONNX
Runtime. One locust run measures a ladder of arrival rates; each process writes its raw
timings, which are merged here into exact percentiles, and locust's own CSV stats are kept
as a cross-check.

The load generator is measured too (psutil on every locust process). Python is
single-threaded, so a locust process near a full core, or one that sends late while the
server answers in time, means the generator was the limit: the ladder is re-run from that
point with one more locust process (locust's --processes: a master and N workers), and a
point still limited at the most processes allowed is marked, never counted as the server's
capacity.
"""

from __future__ import annotations

import csv
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from mlc.errors import MlcError, UsageError
from mlc.profile.affinity import cores_apart, pin_tree, usable_cores
from mlc.profile.latency import Timings, point_from, probe_rate, summarize
from mlc.profile.results import LoadPoint
from mlc.profile.sampling import ProcessSampler
from mlc.profile.server import ServerProcess, listening_pids
from mlc.serve.layout import ServingLayout

LOCUSTFILE = Path(__file__).with_name("_locustfile.py")
# A distributed run's locustfile: the run's configuration, then mlc's locustfile (workers need mlc installed).
_RUNFILE = """import os
os.environ["MLC_PROFILE_LOCUST"] = {config}
from mlc.profile._locustfile import InferUser, LadderShape  # noqa: E402,F401
"""
_BUSY_PCT = 85.0  # a load process above this share of one core (peak over the point) is saturated
_DRAIN_S = 1.5  # after the last stage: time for answers in flight to come back (5 SLOs if longer)
_BODIES = 64
_PRECISE_BELOW_RPS = 150.0  # per load process: below it, sends are timed to ~0.1 ms by spinning (see _locustfile)
_PROBE_REQUESTS = 30


@dataclass(frozen=True)
class Endpoint:
    """What one inference request looks like on the wire."""

    model_name: str
    input_name: str
    datatype: str  # KServe v2 name: FP32, FP64, INT64, ...
    row_shape: tuple[int, ...]  # one row, without the batch dimension

    def bodies(self, count: int, seed: int) -> list[str]:
        """`count` distinct one-row v2 JSON requests."""
        rng = np.random.default_rng(seed)
        size = int(np.prod(self.row_shape))
        out = []
        for _ in range(count):
            values = rng.standard_normal(size)
            data = [round(float(v), 5) for v in values] if self.datatype.startswith("FP") else [
                int(v) for v in np.round(values)]
            out.append(json.dumps({"inputs": [{"name": self.input_name, "shape": [1, *self.row_shape],
                                               "datatype": self.datatype, "data": data}]}))
        return out

    @property
    def path(self) -> str:
        return f"/v2/models/{self.model_name}/infer"


@dataclass(frozen=True)
class Distributed:
    """locust in distributed mode: a master here, `local_workers` worker processes started here and
    `remote_workers` more that connect from other hosts, so one process is not the load's limit.

    Every worker draws its own share of the arrivals (rate / workers, seeded by its index), sends
    its raw timings to the master over locust's own connection (a remote worker shares no disk with
    it), and is counted by host in the report. A remote worker fetches the run's locustfile, with the
    run's configuration inside, from the master (`locust -f - --worker`); each run of a ladder is a new
    master, so remote workers are started in a loop (see the README).
    """

    bind_host: str = "127.0.0.1"
    port: int = 5557
    local_workers: int = 2
    remote_workers: int = 0
    connect_timeout_s: int = 120  # how long the master waits for every worker to connect

    @property
    def workers(self) -> int:
        return self.local_workers + self.remote_workers

    @classmethod
    def parse(cls, master: str | None, local_workers: int, remote_workers: int = 0) -> Distributed:
        """From --locust-master [HOST][:PORT] (default 127.0.0.1:5557) and the worker counts."""
        host, _, port = (master or "").rpartition(":") if ":" in (master or "") else (master or "", "", "")
        try:
            number = int(port) if port else 5557
        except ValueError:
            raise UsageError(f"--locust-master {master!r}: the port is not a number",
                             "write HOST:PORT, e.g. 0.0.0.0:5557 to accept workers from other hosts") from None
        if local_workers + remote_workers < 1:
            raise UsageError("a distributed locust run needs at least one worker",
                             "give --locust-workers N (here) and/or --locust-remote-workers K (other hosts)")
        return cls(host or "127.0.0.1", number, local_workers, remote_workers)

    @property
    def connect_host(self) -> str:
        """Where this host's workers find the master."""
        return "127.0.0.1" if self.bind_host in ("", "*", "0.0.0.0", "::") else self.bind_host


@dataclass
class LocustRun:
    """What one locust subprocess left behind."""

    records: list[dict[str, np.ndarray]]
    loadgen: ProcessSampler
    processes: int
    csv_requests: int | None
    reasons: list[str]
    hosts: dict[str, int]  # generator processes that sent load, by host


class HttpBench:
    """One configuration being served over HTTP, ready to take ladders of arrival rates."""

    def __init__(self, load: HttpLoad, url: str, config: ServingLayout, sampler: ProcessSampler,
                 loadgen_cores: list[int] | None, cores_pinned: int | None) -> None:
        self._load = load
        self.url = url
        self.config = config
        self._sampler = sampler
        self._loadgen_cores = loadgen_cores
        self._cores = cores_pinned
        self.notes: list[str] = []

    def probe_rps(self) -> float:
        """A safe first rate: half of what sequential requests achieve, times the server's workers."""
        parts = urlsplit(self.url)
        body = self._load.endpoint.bodies(1, seed=0)[0].encode()
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        times = []
        try:
            for _ in range(_PROBE_REQUESTS):
                start = time.perf_counter()
                conn.request("POST", self._load.endpoint.path, body, {"Content-Type": "application/json"})
                reply = conn.getresponse()
                payload = reply.read()
                if reply.status != 200:
                    raise MlcError(f"{self.url} answered HTTP {reply.status} to an inference request: "
                                   f"{payload[:300].decode(errors='replace')}")
                times.append(time.perf_counter() - start)
        except OSError as exc:
            raise MlcError(f"cannot send inference requests to {self.url}: {exc}") from exc
        finally:
            conn.close()
        return probe_rate(times, self.config.workers)

    def ladder(self, rates: list[float], stop_on_fail: bool = True) -> list[LoadPoint]:
        """Hold each rate for one point's duration in one locust run; upgrade the generator if it was the limit."""
        points: list[LoadPoint] = []
        todo = list(rates)
        while todo and not self._load.stop.is_set():
            run = self._run_locust(todo, stop_on_fail)
            got = self._points(run, todo)
            if self._load.stop.is_set():
                points += got[:-1]  # interrupted mid-stage: the last stage mixes load and silence
                break
            limited = next((k for k, p in enumerate(got) if p.loadgen_limited), None)
            if limited is not None and self._load.processes < self._load.max_processes:
                self._load.processes += 1
                self.notes.append(f"load generator saturated at {todo[limited]:.0f}/s with "
                                  f"{run.processes} locust process(es); re-measured with {self._load.processes}")
                points += got[:limited]
                todo = todo[limited:]
                continue
            points += got
            if limited is not None:
                self.notes.append(f"load generator still saturated at {todo[limited]:.0f}/s with "
                                  f"{run.processes} locust process(es): points marked, not counted as capacity")
            break
        if stop_on_fail:
            first_fail = next((k for k, p in enumerate(points) if not p.meets_slo), None)
            points = points if first_fail is None else points[: first_fail + 1]
        return points

    def _run_locust(self, rates: list[float], stop_on_fail: bool) -> LocustRun:
        load = self._load
        out_dir = Path(tempfile.mkdtemp(prefix="mlc-profile-locust-", dir=load.workdir))
        bodies = out_dir / "bodies.jsonl"
        bodies.write_text("\n".join(load.endpoint.bodies(_BODIES, seed=load.seed)) + "\n")
        load.seed += 1
        parts = urlsplit(self.url)
        slo_s = load.slo_ms / 1e3
        users = int(min(1000, max(16, math.ceil(max(rates) * 3 * slo_s) + 8)))
        users = max(users, 2 * load.processes)
        stages = [[float(r), load.duration_s] for r in rates]
        run_s = len(rates) * load.duration_s + max(_DRAIN_S, 5 * slo_s)
        config: dict[str, Any] = {
            "host": parts.hostname, "port": parts.port or 80, "path": load.endpoint.path,
            "bodies": str(bodies), "stages": stages, "poisson": load.poisson, "seed": load.seed,
            "processes": load.processes, "users": users, "out_dir": str(out_dir), "slo_ms": load.slo_ms,
            "warmup_s": load.warmup_s, "stop_on_fail": stop_on_fail, "abort_lag_s": max(1.0, 10 * slo_s),
            "timeout_s": max(10.0, 50 * slo_s), "run_s": run_s,
            "precise_below_rps": _PRECISE_BELOW_RPS, "apart": self._loadgen_cores is not None,
        }
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", self.url,
                   "--csv", str(out_dir / "locust"), "--only-summary", "--loglevel", "WARNING",
                   "--stop-timeout", "2"]
        dist = load.distributed
        env = {**os.environ, "MLC_PROFILE_LOCUST": json.dumps(config)}
        if dist is not None:
            # Workers may be on other hosts: the bodies travel inside the configuration, the
            # configuration inside the locustfile they fetch from the master, the records back by message.
            config |= {"bodies": load.endpoint.bodies(_BODIES, seed=load.seed - 1), "send_records": True}
            runfile = out_dir / f"mlc_locust_{uuid.uuid4().hex[:12]}.py"
            runfile.write_text(_RUNFILE.format(config=json.dumps(json.dumps(config))))
            command[command.index(str(LOCUSTFILE))] = str(runfile)
            command += ["--master", "--master-bind-host", dist.bind_host, "--master-bind-port", str(dist.port),
                        "--expect-workers", str(dist.workers), "--expect-workers-max-wait", str(dist.connect_timeout_s)]
            env.pop("MLC_PROFILE_LOCUST")
        elif load.processes > 1:
            command += ["--processes", str(load.processes)]
        cores = self._loadgen_cores
        log = (out_dir / "locust.log").open("wb")
        affinity = (lambda: os.sched_setaffinity(0, cores)) if cores else None
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=affinity)
        workers: list[subprocess.Popen[bytes]] = []
        if dist is not None:
            worker_cmd = [sys.executable, "-m", "locust", "-f", "-", "--worker", "--master-host", dist.connect_host,
                          "--master-port", str(dist.port), "--loglevel", "WARNING"]
            workers = [subprocess.Popen(worker_cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=out_dir,
                                        preexec_fn=affinity) for _ in range(dist.local_workers)]
        sampler = ProcessSampler(lambda: [proc.pid, *(w.pid for w in workers)]).start()
        try:
            wait_s = run_s + 60 + (dist.connect_timeout_s if dist is not None else 0)
            proc.wait(timeout=wait_s)
            for worker in workers:
                _finish(worker, 15)  # the master told them to quit
        except KeyboardInterrupt:
            load.stop.set()  # locust got the same Ctrl-C: let it write what it measured
            _finish(proc, 15)
        except subprocess.TimeoutExpired:
            _finish(proc, 5)
        finally:
            for worker in workers:
                _finish(worker, 5)
            sampler.stop()
            log.close()
        records = [dict(np.load(f)) for f in sorted(out_dir.glob("records-*.npz"))]
        if not records and not load.stop.is_set():
            tail = "\n".join((out_dir / "locust.log").read_text(errors="replace").splitlines()[-20:])
            shutil.rmtree(out_dir, ignore_errors=True)
            raise MlcError(f"locust exited with code {proc.returncode} and measured nothing:\n{tail}",
                           "check that locust is installed: pip install locust")
        csv_requests = _csv_request_count(out_dir / "locust_stats.csv")
        shutil.rmtree(out_dir, ignore_errors=True)
        reasons = sorted({str(r["reason"]) for r in records if str(r["reason"])})
        hosts: dict[str, int] = {}
        for record in records:
            host = str(record.get("host", "this host"))
            hosts[host] = hosts.get(host, 0) + 1
        return LocustRun(records, sampler, load.processes, csv_requests, reasons, hosts)

    def _points(self, run: LocustRun, rates: list[float]) -> list[LoadPoint]:
        load = self._load
        self.notes += [f"locust stopped early: {reason}" for reason in run.reasons]
        if load.distributed is not None:
            where = ", ".join(f"{n} on {host}" for host, n in sorted(run.hosts.items()))
            note = (f"load generated by locust in distributed mode: {sum(run.hosts.values())} worker process(es) "
                    f"sent requests ({where}), the master on {socket.gethostname()} "
                    f"({load.distributed.bind_host}:{load.distributed.port})")
            if note not in self.notes:
                self.notes.append(note)
        answered = sum(int(np.isfinite(r["done"]).sum()) for r in run.records)
        # A request answered while locust shuts down can land in one count and not the other.
        if run.csv_requests is not None and abs(run.csv_requests - answered) > max(2, answered // 100):
            self.notes.append(f"locust's CSV counts {run.csv_requests} requests, the raw timings {answered}")
        if not run.records:
            return []
        t0 = min(float(r["t0"]) for r in run.records)
        points = []
        for k, rate in enumerate(rates):
            start = k * load.duration_s
            parts = [(r, r["stage"] == k) for r in run.records]
            if not any(mask.any() for _, mask in parts):
                break  # the run ended before this stage
            # Times from the stage's start; `ok` is a flag and is not shifted (a shifted flag read
            # as its opposite when the shift was 1).
            scheduled, sent, done = (np.concatenate([r[key][mask] - start for r, mask in parts])
                                     for key in ("scheduled", "sent", "done"))
            timings = Timings(scheduled, sent, done, np.concatenate([r["ok"][mask] for r, mask in parts]).astype(bool))
            window = (load.warmup_s, load.duration_s)
            summary = summarize(timings, offered_rps=rate, window=window, slo_ms=load.slo_ms)
            lo, hi = t0 + start + window[0], t0 + start + window[1]
            serving, generator = self._sampler.window(lo, hi), run.loadgen.window(lo, hi)
            # Saturated: a locust process near a full core, or sends late as a rule (the median,
            # not a scheduling hiccup) while the server itself answers within the SLO.
            late = summary["send_lag_p50_ms"] > max(1.0, 0.25 * load.slo_ms)
            limited = (generator.busiest_process_peak_pct or 0.0) >= _BUSY_PCT or (
                late and summary["service_p99_ms"] <= load.slo_ms)
            points.append(point_from(summary, serving, loadgen=generator, loadgen_processes=run.processes,
                                     loadgen_limited=bool(limited), cores_pinned=self._cores))
        return points


class HttpLoad:
    """Starts `mlc serve` per configuration (or uses --url) and measures it with locust."""

    mode = "http"

    def __init__(self, endpoint: Endpoint, *, ref: str, serve_target: str, url: str | None, poisson: bool,
                 duration_s: float, warmup_s: float, slo_ms: float, max_processes: int | None = None,
                 seed: int = 0, workdir: Path | None = None, distributed: Distributed | None = None) -> None:
        self.endpoint = endpoint
        self._ref = ref
        self._serve_target = serve_target
        self.url = url
        self.poisson = poisson
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.slo_ms = slo_ms
        self.distributed = distributed
        # Distributed: the workers given are the generator, not upgraded one process at a time.
        self.processes = distributed.workers if distributed is not None else 1
        self.max_processes = self.processes if distributed is not None else (
            max_processes or max(2, len(usable_cores()) // 2))
        self.seed = seed
        self.workdir = workdir
        self.stop = threading.Event()
        self._server: ServerProcess | None = None

    def serving_pids(self) -> list[int]:
        if self._server is not None and self._server.pid is not None:
            return [self._server.pid]
        return listening_pids(self.url) if self.url else []

    @contextmanager
    def open(self, config: ServingLayout, sampler: ProcessSampler, cores: list[int] | None = None,
             ) -> Iterator[HttpBench]:
        """The configuration served over HTTP for the block's length; `cores` pins the server."""
        others = cores_apart(cores)
        if self.url is not None:
            if cores:
                pin_tree(self.serving_pids(), cores)
            yield HttpBench(self, self.url, config, sampler, others, len(cores) if cores else None)
            return
        server = ServerProcess(self._ref, config, self._serve_target)
        self._server = server
        try:
            server.start()
            if cores:
                pin_tree([server.pid or 0], cores)
            yield HttpBench(self, server.url, config, sampler, others, len(cores) if cores else None)
        finally:
            self._server = None
            server.stop()


def _finish(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _csv_request_count(path: Path) -> int | None:
    """Requests of locust's 'Aggregated' row in its CSV stats (the standard summary), if written."""
    try:
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get("Name") == "Aggregated":
                    return int(row["Request Count"])
    except (OSError, KeyError, ValueError):
        return None
    return None
