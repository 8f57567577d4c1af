"""A minimal KServe v2 server for testing the profiler's http mode without `mlc serve`.

It answers readiness, model metadata and inference (after a fixed service time, one request
at a time per connection thread), enough to check that the load generator measures what a
server does. Run: python v2_stub.py PORT SERVICE_MS.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else the reply's body waits ~40 ms for a delayed ACK
    service_s = 0.001

    def _reply(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/v2/health/ready", "/v2/health/live") or self.path.startswith("/v2/models/"):
            self._reply(200, {"name": self.path.rsplit("/", 1)[-1]})
        else:
            self._reply(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.path.endswith("/infer"):
            self._reply(404, {"error": f"no route {self.path}"})
            return
        time.sleep(self.service_s)
        rows = request["inputs"][0]["shape"][0]
        self._reply(200, {"outputs": [{"name": "label", "shape": [rows], "datatype": "INT64", "data": [0] * rows}]})

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops SYNs when a load generator opens its connections at
    # once; each dropped one is retried a second later, a 1 s "latency" that is the stub's, not a load's.
    request_queue_size = 1024


def main() -> None:
    _Handler.service_s = float(sys.argv[2]) / 1e3
    server = _Server(("127.0.0.1", int(sys.argv[1])), _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
