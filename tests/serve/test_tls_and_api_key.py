"""TLS and an API key on both transports, with real clients: tritonclient.http and .grpc, urllib
and a bare grpc channel. The certificate is self-signed, made here with `cryptography`."""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mlc.errors import UsageError
from mlc.serve import security
from mlc.serve.errors import UnauthenticatedError
from mlc.serve.security import load_security

from .conftest import N_FEATURES
from .test_grpc import grpc_url

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
grpc = pytest.importorskip("grpc")
x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

ROWS = np.random.default_rng(13).normal(size=(3, N_FEATURES)).astype(np.float32)
KEY = "k3y-for-tests_0123456789"


def self_signed(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """(certificate, private key) PEM files for 127.0.0.1 and localhost, valid from yesterday to tomorrow."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture()
def secured(start_server, tmp_path):
    """A server requiring TLS and an API key on REST and gRPC: (server, grpc url, certificate). Two
    workers, so the settings are the ones that crossed into spawned processes."""
    cert, key = self_signed(tmp_path)
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    srv = start_server("reg", "--workers", "2", "--grpc-port", "0", "--tls-cert", str(cert), "--tls-key", str(key),
                       "--api-key-file", str(key_file))
    return srv, grpc_url(srv), cert


def _get(url: str, cert: Path, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(cert))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_rest_needs_tls_and_the_key_except_for_health(secured):
    srv, _, cert = secured
    base = f"https://{srv.url}"
    assert any(f"listening on {base}" in line for line in srv.output)
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert _get(base + path, cert)[0] == 200  # probes carry no credentials
    status, headers, body = _get(base + "/v2/models/reg", cert)
    assert status == 401 and headers.get("www-authenticate", headers.get("WWW-Authenticate")) == "Bearer"
    assert "requires an API key" in json.loads(body)["error"]
    assert _get(base + "/v2/models/reg", cert, {"Authorization": "Bearer wrong"})[0] == 401
    assert _get(base + "/metrics", cert)[0] == 401
    assert _get(base + "/metrics", cert, {"Authorization": f"Bearer {KEY}"})[0] == 200
    with pytest.raises(Exception):  # noqa: B017 - plain HTTP to a TLS port: whatever the client raises
        srv.request("GET", "/v2/health/live")

    client = httpclient.InferenceServerClient(srv.url, ssl=True, ssl_options={"ca_certs": str(cert)})
    try:
        tensor = httpclient.InferInput("X", list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS)
        with pytest.raises(InferenceServerException, match="requires an API key"):
            client.infer("reg", [tensor])
        result = client.infer("reg", [tensor], headers={"Authorization": f"Bearer {KEY}"})
        assert result.as_numpy("variable").shape[0] == len(ROWS)
    finally:
        client.close()


def test_grpc_needs_tls_and_the_key_except_for_health(secured):
    _, url, cert = secured
    client = grpcclient.InferenceServerClient(url, ssl=True, root_certificates=str(cert))
    try:
        assert client.is_server_live() and client.is_server_ready()  # open without the key
        tensor = grpcclient.InferInput("X", list(ROWS.shape), "FP32")
        tensor.set_data_from_numpy(ROWS)
        with pytest.raises(InferenceServerException) as info:
            client.infer("reg", [tensor])
        assert info.value.status() == "StatusCode.UNAUTHENTICATED" and "requires an API key" in info.value.message()
        with pytest.raises(InferenceServerException) as info:
            client.get_model_metadata("reg", headers={"authorization": "Bearer wrong"})
        assert info.value.status() == "StatusCode.UNAUTHENTICATED" and "not valid" in info.value.message()
        result = client.infer("reg", [tensor], headers={"authorization": f"Bearer {KEY}"})
        assert result.as_numpy("variable").shape[0] == len(ROWS)
    finally:
        client.close()

    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(url, credentials) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(url) as channel:  # plain text to a TLS port never gets an answer
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_key_is_compared_in_constant_time_and_never_held_in_clear(monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    key = security.ApiKey.of("s3cret")
    key.check("Bearer s3cret")
    key.check("bearer   s3cret ")  # the scheme is case-insensitive, as HTTP says
    with pytest.raises(UnauthenticatedError, match="not valid"):
        key.check("Bearer s3cre")
    assert len(compared) == 3 and all(len(a) == len(b) == 32 for a, b in compared)  # digests, not the key
    assert "s3cret" not in repr(key)
    with pytest.raises(UnauthenticatedError, match="not of the form"):
        key.check("Basic czNjcmV0")


def test_bad_security_flags_are_one_clear_error(tmp_path):
    cert, key = self_signed(tmp_path)
    other_cert, _ = self_signed(tmp_path, "other")
    with pytest.raises(UsageError, match="go together"):
        load_security(cert, None, None)
    with pytest.raises(UsageError, match="no such file"):
        load_security(tmp_path / "missing.crt", key, None)
    with pytest.raises(UsageError, match="not a usable PEM certificate and its private key"):
        load_security(other_cert, key, None)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="must hold one key"):
        load_security(None, None, empty)
    with pytest.raises(UsageError, match="cannot read the API key file"):
        load_security(None, None, tmp_path / "nope")
    loaded = load_security(cert, key, None)
    assert loaded.tls and loaded.tls_cert == cert.resolve() and loaded.api_key is None
