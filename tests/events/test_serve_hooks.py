"""Deliveries run in `mlc serve`: a receiver that blocks until the test releases it holds the
deliverer's thread, never the server's requests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from mlc.events.hooks import add_hook
from mlc.registry import Registry
from tests.serve.conftest import Server, infer_body, mlc_home  # noqa: F401 - mlc_home is a fixture


def test_a_blocking_receiver_does_not_stop_serving(mlc_home: Path, tmp_path: Path, receiver) -> None:  # noqa: F811
    home = tmp_path / "home"
    shutil.copytree(mlc_home, home)
    r = receiver(hold_at=1)
    registry = Registry(home)
    add_hook(registry, r.url)
    registry.set_alias("iris:1", "prod")  # an event for the server's deliverer to send
    for workers in ("1", "2"):  # in the serving process itself, and in the supervisor of two workers
        r.holding.clear()
        r.release.clear()
        r.requests.clear()
        r.hold_at = 1
        registry.set_alias(f"iris:{workers}", "candidate")
        server = Server(["iris@prod", "--workers", workers], home)
        try:
            assert r.holding.wait(120), "the server's deliverer never posted"
            x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
            for i in range(20):  # the receiver still holds the delivery all along
                status, body = server.json("POST", "/v2/models/iris/infer", infer_body(x, id=f"r{i}"))
                assert status == 200 and body["id"] == f"r{i}"
            assert r.holding.is_set() and not r.release.is_set()
            r.release.set()
        finally:
            r.release.set()
            assert server.stop() == 0
