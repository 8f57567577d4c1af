"""Memory a parent process and a spawned worker share: how chunks reach a worker without a pipe.

A slot is an anonymous file (memfd on Linux, an unlinked temporary file elsewhere) that both
processes map. It grows to the largest chunk written into it and is freed with the last process
that holds it, so a run killed with -9 leaves nothing behind (a named shared-memory segment would
outlive it). It reaches a spawned worker as a file descriptor, duplicated into the child the way
multiprocessing passes a Connection.

Who may touch it when is the caller's protocol (mlc.score.pool): the parent writes only while
the worker is idle, and the worker drops what it read before it says it is done.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Callable
from multiprocessing.reduction import DupFd
from typing import Any


class Slot:
    """A growable anonymous file that the parent writes chunks into and one worker maps to read them.

    Passed to a spawned worker as its file descriptor (multiprocessing duplicates it into the
    child, as it does for a Connection).
    """

    def __init__(self, fd: int | None = None) -> None:
        self.fd = _anonymous_file() if fd is None else fd
        self._map: mmap.mmap | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return _attach, (DupFd(self.fd),)

    def write(self, size: int, fill: Callable[[memoryview], None]) -> None:
        """Let `fill` write the first `size` bytes (the parent's side; the worker is idle)."""
        if os.fstat(self.fd).st_size < size:
            os.ftruncate(self.fd, size)
        with memoryview(self._mapped(size))[:size] as view:
            fill(view)

    def read(self, size: int) -> memoryview:
        """The first `size` bytes, in place (the worker's side)."""
        return memoryview(self._mapped(size))[:size]

    def _mapped(self, size: int) -> mmap.mmap:
        if self._map is None or len(self._map) < size:
            # A mapping still referenced (an Arrow buffer of the last chunk) lives on until released.
            self._map = mmap.mmap(self.fd, max(size, 1))
        return self._map

    def close(self) -> None:
        self._map = None
        os.close(self.fd)


def _attach(fd: Any) -> Slot:
    return Slot(fd.detach())


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("mlc-score-slot")
    fd, path = tempfile.mkstemp(prefix="mlc-score-slot-")  # pragma: no cover - not Linux
    os.unlink(path)  # pragma: no cover
    return fd  # pragma: no cover


def copy_of(data: bytes) -> Callable[[memoryview], None]:
    """A `fill` for Slot.write that copies `data` in."""
    def fill(view: memoryview) -> None:
        view[:] = data
    return fill
