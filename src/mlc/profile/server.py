"""Starting `mlc serve` for one configuration, and finding the process behind any v2 URL.

The profiler measures the real server, so each configuration of an http sweep is a fresh
`python -m mlc serve` process with that configuration's flags; its log goes to a file (a
pipe nobody reads would fill and stall it) and is shown when it fails to become ready.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from mlc.errors import MlcError, UsageError
from mlc.serve.layout import ServingLayout

SERVE_COMMAND = (sys.executable, "-m", "mlc", "serve")
_READY_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_ready(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def model_ready(url: str, model: str, timeout: float = 5.0) -> None:
    """Refuse a URL that does not serve `model` over v2, with what was wrong."""
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{model}", timeout=timeout) as reply:
            json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise UsageError(f"{url} answers HTTP {exc.code} for model {model!r}",
                         "pass the name the server knows the model by with --model-name") from exc
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise UsageError(f"cannot reach a KServe v2 server at {url}: {exc}",
                         "start it first, or leave out --url to let mlc profile start `mlc serve`") from exc


EXTERNAL_UNKNOWN = "external, unknown"


def served_layout(url: str, model: str, timeout: float = 5.0) -> tuple[ServingLayout | None, str]:
    """(the layout the server at url serves `model` with, how it was read), from Triton's config extension.

    Batcher settings and instances come from `/v2/models/{m}/config` (Triton and mlc serve both
    answer it); worker processes and threads only from mlc serve's own parameters. What the
    server does not say is never filled with a default: a server without the extension is
    "external, unknown", and a layout read partly says which part it could not read.
    """
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{model}/config", timeout=timeout) as reply:
            config = json.loads(reply.read() or b"{}")
    except (OSError, urllib.error.URLError, ValueError):
        return None, EXTERNAL_UNKNOWN
    if not isinstance(config, dict) or "max_batch_size" not in config:
        return None, EXTERNAL_UNKNOWN
    batching = config.get("dynamic_batching") or {}
    groups = config.get("instance_group") or [{}]
    params = config.get("parameters") or {}

    def param(name: str) -> int | None:
        value = (params.get(name) or {}).get("string_value")
        return int(value) if value is not None and str(value).isdigit() else None

    workers, threads = param("mlc_workers"), param("mlc_intra_op_threads")
    layout = ServingLayout.of(
        max_batch_size=max(1, int(config.get("max_batch_size") or 1)),
        max_queue_delay_us=int(batching.get("max_queue_delay_microseconds") or 0) if batching else 0,
        instances=max(1, sum(int(g.get("count") or 1) for g in groups)), threads=threads or 1, workers=workers or 1,
        preferred_batch_sizes=batching.get("preferred_batch_size") or ())
    how = f"read from {url}/v2/models/{model}/config"
    if workers is None or threads is None:
        how += "; worker processes and threads per instance: unknown (not in the server's config)"
    return layout, how


def listening_pids(url: str) -> list[int]:
    """The local processes listening on the URL's port, to sample their CPU and memory; [] if remote.

    Every one of them: `mlc serve --workers N` (like gunicorn or uvicorn's workers) has N
    processes listening on one port with SO_REUSEPORT, and the server is all of them.
    """
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return []
    port = parts.port or 80
    try:
        return sorted({int(conn.pid) for conn in psutil.net_connections(kind="tcp")
                       if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid})
    except psutil.Error:
        return []


class ServerProcess:
    """`python -m mlc serve REF` serving one configuration's layout, on a free loopback port."""

    def __init__(self, ref: str, config: ServingLayout, target: str, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [*SERVE_COMMAND, ref, "--host", "127.0.0.1", "--port", str(self.port),
                         *config.serve_flags(), "--target", target]
        self._env = {**os.environ, **(env or {})}
        self._log = Path(tempfile.mkstemp(prefix="mlc-profile-serve-", suffix=".log")[1])
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> ServerProcess:
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT, env=self._env,
                                          start_new_session=True)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise MlcError(f"`mlc serve` exited with code {self._proc.returncode} before it was ready:\n"
                               f"{self.log_tail()}", "run the same `mlc serve` command yourself to see why")
            if is_ready(self.url, timeout=1.0):
                return self
            time.sleep(0.1)
        self.stop()
        raise MlcError(f"`mlc serve` was not ready after {_READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (the server drains), then SIGKILL of its whole session if it lingers."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
