"""Finding the local processes behind a --url, so a multi-process server is measured whole."""

from __future__ import annotations

import subprocess
import sys
import time

from mlc.profile.server import free_port, listening_pids

_LISTEN = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
time.sleep(60)
"""


def test_every_process_listening_on_the_port_is_found():
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", _LISTEN, str(port)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        deadline = time.monotonic() + 10
        while listening_pids(f"http://127.0.0.1:{port}") != sorted(p.pid for p in procs):
            assert time.monotonic() < deadline, listening_pids(f"http://127.0.0.1:{port}")
            time.sleep(0.05)
        assert listening_pids(f"http://example.com:{port}") == []  # remote: nothing local to sample
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
