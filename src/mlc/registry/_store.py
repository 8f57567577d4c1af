"""Content-addressed artifact storage: blobs named by their sha256.

Writes go to a temporary file in the same folder, are fsynced and renamed, so a
reader (or a crash) never sees half a blob. Reads re-hash and refuse a mismatch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlc.errors import IntegrityError, NotFoundError
from mlc.files import atomic_write

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class BlobStore:
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
