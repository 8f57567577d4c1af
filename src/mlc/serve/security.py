"""TLS and an API key, the same for both transports, checked once in the parent process.

`mlc serve --tls-cert/--tls-key` makes REST and gRPC speak TLS only; `--api-key-file` makes
every route but the health checks require `Authorization: Bearer KEY` (an HTTP header, or gRPC
metadata). The files are read and checked before any worker starts, so a missing file, a key
that does not match its certificate or an empty key file is one CLI error rather than N
crashing workers. The key is compared in constant time (hmac.compare_digest over SHA-256
digests, so neither its bytes nor its length leak through timing) and never printed.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from dataclasses import dataclass
from pathlib import Path

from mlc.errors import UsageError
from mlc.serve.errors import UnauthenticatedError

# What stays open with an API key: the probes an orchestrator sends without credentials.
OPEN_HTTP_PATHS = frozenset({"v2/health/live", "v2/health/ready"})  # as paths read without outer slashes
OPEN_GRPC_METHODS = frozenset({
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
})
_SCHEME = "bearer "


class ApiKey:
    """The key requests must present, held as its SHA-256 digest only (so a plan that crosses into
    worker processes, or a repr in a log, never carries the key itself)."""

    __slots__ = ("_digest",)

    def __init__(self, digest: bytes) -> None:
        self._digest = digest

    @classmethod
    def of(cls, value: str) -> ApiKey:
        return cls(hashlib.sha256(value.encode()).digest())

    def __repr__(self) -> str:
        return "ApiKey(***)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and hmac.compare_digest(self._digest, other._digest)

    def __hash__(self) -> int:
        return hash(self._digest)

    def __getstate__(self) -> bytes:
        return self._digest

    def __setstate__(self, state: bytes) -> None:
        self._digest = state

    def check(self, authorization: str | None) -> None:
        """Raise UnauthenticatedError unless `authorization` is `Bearer KEY` with this key."""
        if authorization is None:
            raise UnauthenticatedError("this server requires an API key and the request has none",
                                       "send the header Authorization: Bearer KEY")
        if authorization[:len(_SCHEME)].lower() != _SCHEME:
            raise UnauthenticatedError("the Authorization header is not of the form 'Bearer KEY'",
                                       "send the header Authorization: Bearer KEY")
        presented = hashlib.sha256(authorization[len(_SCHEME):].strip().encode()).digest()
        if not hmac.compare_digest(presented, self._digest):
            raise UnauthenticatedError("the API key is not valid", "send the key in the server's --api-key-file")


@dataclass(frozen=True)
class Security:
    """What both transports require of a client: TLS when cert and key are set, an API key when set."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    api_key: ApiKey | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def tls_pair(self) -> tuple[bytes, bytes]:
        """(private key, certificate chain) as PEM bytes, for grpc.ssl_server_credentials."""
        if self.tls_cert is None or self.tls_key is None:
            raise UsageError("TLS is not configured")
        return self.tls_key.read_bytes(), self.tls_cert.read_bytes()


def load_security(tls_cert: Path | None, tls_key: Path | None, api_key_file: Path | None) -> Security:
    """Check the flags' files and read the key; every mistake is a UsageError naming the file."""
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together", "pass both (PEM files), or neither for plain text")
    if tls_cert is not None and tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except FileNotFoundError as exc:
            raise UsageError(f"cannot read {exc.filename}: no such file") from None
        except (ssl.SSLError, OSError) as exc:
            raise UsageError(f"--tls-cert {tls_cert} and --tls-key {tls_key} are not a usable PEM certificate "
                             f"and its private key ({exc})",
                             "pass the certificate (chain) and the unencrypted key that belongs to it") from None
        tls_cert, tls_key = tls_cert.resolve(), tls_key.resolve()  # workers may not share the cwd
    api_key = None
    if api_key_file is not None:
        try:
            text = api_key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the API key file {api_key_file}: {exc}") from None
        if not text or any(c.isspace() or not c.isprintable() for c in text) or not text.isascii():
            raise UsageError(f"the API key file {api_key_file} must hold one key: printable ASCII, no spaces",
                             "write a key such as the output of: python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'")
        api_key = ApiKey.of(text)
    return Security(tls_cert=tls_cert, tls_key=tls_key, api_key=api_key)
