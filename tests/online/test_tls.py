"""TLS on the leader's request APIs: TLS only when configured, client certificates if asked."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import ConfigError
from cvfl.online import start_party
from cvfl.online.service import LeaderService
from cvfl.train.config import JobConfig
from cvfl.wire import scoring_pb2 as spb
from cvfl.wire import scoring_pb2_grpc as sgrpc
from tests.online.helpers import serve_section
from tests.serve.helpers import export_untrained

Pem = tuple[bytes, bytes]  # certificate, key


def _issue(
    name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256()), key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    ca = _issue("test CA", None)
    files: dict[str, Path] = {}
    for name, pair in (("ca", ca), ("server", _issue("leader", ca)), ("client", _issue("app", ca))):
        cert, key = _pem(*pair)
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(cert)
        files[f"{name}-key"] = tmp_path / f"{name}-key.pem"
        files[f"{name}-key"].write_bytes(key)
        files[f"{name}-key"].chmod(0o600)
    return files


@pytest.fixture
def leader_job(small_job: Callable[..., tuple[JobConfig, JobConfig]]) -> JobConfig:
    lead, _ = small_job()
    export_untrained(lead)
    return lead


def _serve(lead: JobConfig, **tls: object) -> LeaderService:
    section = serve_section(lead, follower_timeout=0.2, **tls)
    service = start_party(lead, section, PlaintextSecurity())
    assert isinstance(service, LeaderService)
    return service


@pytest.fixture
def tls_leader(leader_job: JobConfig, pki: dict[str, Path]) -> Iterator[LeaderService]:
    service = _serve(leader_job, tls_cert=pki["server"], tls_key=pki["server-key"])
    yield service
    service.drain()


def _https(port: int, context: ssl.SSLContext) -> dict[str, object]:
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/v1/score",
        data=json.dumps({"ids": ["nobody"]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        body: dict[str, object] = json.loads(answer.read())
        return body


def _grpc(port: int, credentials: grpc.ChannelCredentials) -> spb.ScoreResponse:
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        return sgrpc.ScoringStub(channel).Score(spb.ScoreRequest(ids=["nobody"]), timeout=10)


NOT_HELD = {"id": "nobody", "scored": False, "reason": "leader_lacks_id"}


def test_both_apis_speak_tls_only(tls_leader: LeaderService, pki: dict[str, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(pki["ca"]))
    assert _https(tls_leader.http_port, trusting)["scores"] == [NOT_HELD]
    root = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    assert _grpc(tls_leader.grpc_port, root).scores[0].reason == "leader_lacks_id"
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plaintext to a TLS port
        urllib.request.urlopen(f"http://127.0.0.1:{tls_leader.http_port}/healthz", timeout=5)
    with pytest.raises(urllib.error.URLError):  # a client that does not trust the CA
        _https(tls_leader.http_port, ssl.create_default_context())
    plain = grpc.insecure_channel(f"127.0.0.1:{tls_leader.grpc_port}")
    with plain, pytest.raises(grpc.RpcError):
        sgrpc.ScoringStub(plain).Score(spb.ScoreRequest(ids=["x"]), timeout=5)


def test_client_certificates_are_required_when_a_client_ca_is_set(
    leader_job: JobConfig, pki: dict[str, Path]
) -> None:
    service = _serve(
        leader_job,
        tls_cert=pki["server"],
        tls_key=pki["server-key"],
        tls_client_ca=pki["ca"],
    )
    try:
        anonymous = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            _https(service.http_port, anonymous)
        with pytest.raises(grpc.RpcError):
            _grpc(service.grpc_port, grpc.ssl_channel_credentials(pki["ca"].read_bytes()))
        known = ssl.create_default_context(cafile=str(pki["ca"]))
        known.load_cert_chain(pki["client"], pki["client-key"])
        assert _https(service.http_port, known)["scores"] == [NOT_HELD]
        mutual = grpc.ssl_channel_credentials(
            pki["ca"].read_bytes(), pki["client-key"].read_bytes(), pki["client"].read_bytes()
        )
        assert _grpc(service.grpc_port, mutual).scores[0].reason == "leader_lacks_id"
    finally:
        service.drain()


def test_wrong_tls_files_are_refused_at_start(
    leader_job: JobConfig, pki: dict[str, Path], tmp_path: Path
) -> None:
    def refused(**tls: object) -> str:
        with pytest.raises(ConfigError) as caught:
            _serve(leader_job, **tls)
        assert caught.value.code == "config.serve"
        return caught.value.message

    assert "tls_cert and tls_key: expected both or neither, seen tls_cert only" in refused(
        tls_cert=pki["server"]
    )
    wrong = refused(tls_cert=pki["server"], tls_key=pki["client-key"])
    assert "not the private key of the certificate" in wrong
    assert "tls_cert" in refused(tls_cert=pki["server-key"], tls_key=pki["server-key"])
    assert "cannot be read" in refused(tls_cert=tmp_path / "none.pem", tls_key=pki["server-key"])
    assert "tls_client_ca" in refused(tls_client_ca=pki["ca"])
