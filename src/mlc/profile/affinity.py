"""Pinning processes to a subset of cores, to measure how capacity scales with cores.

A target with more cores than this machine is sized from a per-core figure; that figure is
only honest if it was checked, so the recommended configuration is measured pinned to one
core and to every usable core. sched_setaffinity acts on one thread, so every thread of
every process in the tree is pinned; threads started later inherit their creator's mask.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil


def usable_cores() -> list[int]:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    return sorted(os.sched_getaffinity(0))


def cores_apart(cores: Iterable[int] | None) -> list[int] | None:
    """The usable cores outside `cores`, for the load generator to keep off the cores measured.

    None when nothing is pinned or no core is left; read it before pinning narrows this process's mask.
    """
    if not cores:
        return None
    return sorted(set(usable_cores()) - set(cores)) or None


def _threads(pid: int) -> list[int]:
    try:
        return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return [pid]


def pin_tree(pids: Iterable[int], cores: Iterable[int]) -> None:
    """Pin every thread of these processes and of all their descendants to `cores`."""
    mask = set(cores)
    for pid in pids:
        try:
            tree = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
        except psutil.Error:
            continue
        for proc in tree:
            for tid in _threads(proc):
                try:
                    os.sched_setaffinity(tid, mask)
                except OSError:  # the thread ended meanwhile
                    continue


@contextmanager
def pinned_self(cores: Iterable[int] | None) -> Iterator[None]:
    """Run this process (every thread, and those it starts) on `cores`, then restore the mask."""
    if cores is None:
        yield
        return
    before = set(os.sched_getaffinity(0))
    pin_tree([os.getpid()], cores)
    try:
        yield
    finally:
        pin_tree([os.getpid()], before)
