"""The registry tests' PostgreSQL fixtures (registry_url runs a test on SQLite and on PostgreSQL),
and a webhook receiver: a real HTTP server on loopback whose answers the test scripts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlc.registry import Registry
from tests.registry.conftest import postgres_server, postgres_url, registry_url  # noqa: F401 - fixtures


class Receiver:
    """Records every POST (headers and CloudEvent); answers `fail_first` of them with 500, and holds
    the request numbered `hold_at` (1-based) until `release` is set."""

    def __init__(self, fail_first: int = 0, hold_at: int | None = None) -> None:
        self.fail_first = fail_first
        self.hold_at = hold_at
        self.release = threading.Event()
        self.holding = threading.Event()
        self.requests: list[tuple[dict[str, str], bytes, int]] = []  # headers, body, status answered
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    number = len(receiver.requests) + 1
                    status = 500 if number <= receiver.fail_first else 200
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                if number == receiver.hold_at:
                    receiver.holding.set()
                    receiver.release.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict[str, Any]]:
        """The CloudEvents answered 2xx, in arrival order (duplicates kept)."""
        with self.lock:
            return [json.loads(body) for _, body, status in self.requests if 200 <= status < 300]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture()
def registry(tmp_path: Path, registry_url: str | None) -> Registry:  # noqa: F811 - the imported fixture
    return Registry(tmp_path / "home", registry_url)
