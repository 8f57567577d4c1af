"""Writing files so that a crash, a full disk or an error never leaves one half-written.

Every file mlc writes for a user (registry blobs, exported models, reports) goes through
atomic_write: the bytes go to a temporary file in the same folder, are fsynced, then renamed
over the destination, so the destination is absent, the old file, or the complete new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# The permissions open() would give a new file; mkstemp's 0600 would hide exports and reports
# from everyone else on the machine. Read once, at import: os.umask is process-wide.
_FILE_MODE = 0o666 & ~_umask()


def atomic_write(dest: Path, data: bytes) -> None:
    """Write bytes to dest so that dest is either absent, old, or complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(dest.parent)


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder (which makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
