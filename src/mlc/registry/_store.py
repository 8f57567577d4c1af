"""Content-addressed artifact storage: blobs named by their sha256.

`ArtifactStore` is what the registry asks of a store (put, ensure, verified_path, remove, has),
so an object store (S3, GCS) can follow as another class beside `BlobStore`: its
`verified_path` would fetch into a local cache and re-hash. Today's `BlobStore` is a folder;
when several machines share one registry database, every machine mounts the same folder (a
shared filesystem path as $MLC_HOME/blobs) so that a row committed by one names bytes the
others can read.

Writes go to a temporary file in the same folder, are fsynced and renamed, so a
reader (or a crash) never sees half a blob. Reads re-hash and refuse a mismatch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from mlc.errors import IntegrityError, NotFoundError
from mlc.files import atomic_write

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore(Protocol):
    """The registry's artifact store: bytes named by their sha256, durable before a row names them."""

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store data durably under its sha256 and answer the digest; replaces a damaged copy."""
        ...

    def ensure(self, data: bytes, digest: str) -> None:
        """Write data back if its blob is gone (called under the registry's write lock)."""
        ...

    def has(self, digest: str) -> bool:
        """Whether a blob of that name is present (not re-hashed)."""
        ...

    def verified_path(self, digest: str) -> Path:
        """A local file holding the blob, re-hashed: IntegrityError on a mismatch, NotFoundError if gone."""
        ...

    def remove(self, digest: str) -> None:
        """Remove the blob if present."""
        ...


class BlobStore:
    """An ArtifactStore in a folder: ROOT/sha256/ab/abcdef..."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store data under its sha256 (given when already computed); a damaged copy is replaced."""
        digest = digest or hashlib.sha256(data).hexdigest()
        dest = self.path_for(digest)
        if not dest.exists() or sha256_file(dest) != digest:
            atomic_write(dest, data)
        return digest

    def ensure(self, data: bytes, digest: str) -> None:
        """Write data back if its blob is gone (a delete may remove it between put and use)."""
        dest = self.path_for(digest)
        if not dest.exists():
            atomic_write(dest, data)

    def has(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def verified_path(self, digest: str) -> Path:
        path = self.path_for(digest)
        if not path.exists():
            raise NotFoundError(
                f"artifact {digest[:12]} is missing from the store at {path}",
                "the registry folder was modified by hand; re-register the model",
            )
        actual = sha256_file(path)
        if actual != digest:
            raise IntegrityError(
                f"artifact {path} is corrupted: its sha256 is {actual[:12]}…, the registry recorded {digest[:12]}…",
                "restore the file from a backup or re-register the model; mlc will not serve a corrupted artifact",
            )
        return path

    def remove(self, digest: str) -> None:
        self.path_for(digest).unlink(missing_ok=True)
