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


def test_the_layout_of_a_running_mlc_serve_is_read_from_it_not_assumed(tiny_ref):
    """--url reports what the server runs: a 2-worker batching mlc serve reads back as exactly that."""
    from mlc.profile.server import ServerProcess, served_layout
    from mlc.serve.layout import ServingLayout

    layout = ServingLayout.of(max_batch_size=8, max_queue_delay_us=500, workers=2, instances=1, threads=1)
    with ServerProcess(tiny_ref, layout, "cpu-2") as server:
        read, how = served_layout(server.url, "tiny")
    assert read is not None and "read from" in how and "unknown" not in how
    assert (read.workers, read.instances, read.threads, read.max_batch_size, read.max_queue_delay_us) == (
        2, 1, 1, 8, 500)


def test_a_server_without_triton_s_config_is_external_and_unknown(stub_server):
    from mlc.profile.server import EXTERNAL_UNKNOWN, served_layout

    assert served_layout(stub_server, "tiny") == (None, EXTERNAL_UNKNOWN)
