"""TLS for the leader's request APIs (``[serve] tls_cert``, ``tls_key``, ``tls_client_ca``).

The request APIs are the leader's own service to its own clients, not the attested bridge: a
certificate from the leader's usual PKI, PEM files. Both APIs (gRPC and HTTP) use the same
files; with ``tls_client_ca`` each client must present a certificate that CA issued.

Every file is read and checked when the service starts — a certificate, a private key that
belongs to it, CA certificates — so a wrong file is a ``config.serve`` refusal naming the key,
never a handshake failure later. A private key readable by other users of the host is warned
about (not refused: a secret store may mount it so).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.online.config import ServeSection

log = get_logger(__name__)


@dataclass(frozen=True)
class ApiTls:
    """The checked PEM files of the request APIs' TLS."""

    cert_path: Path
    key_path: Path
    cert: bytes
    key: bytes
    client_ca_path: Path | None = None
    client_ca: bytes | None = None

    def grpc_credentials(self) -> Any:
        """Server credentials for ``grpc.aio.Server.add_secure_port``."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """The ``uvicorn.Config`` keywords that make the HTTP API TLS-only."""
        options: dict[str, Any] = {
            "ssl_certfile": str(self.cert_path),
            "ssl_keyfile": str(self.key_path),
        }
        if self.client_ca_path is not None:
            options["ssl_ca_certs"] = str(self.client_ca_path)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options


def load_api_tls(section: ServeSection) -> ApiTls | None:
    """Read and check the TLS files of ``section``; None when it asks for no TLS.

    Raises:
        ConfigError: a file is missing or unreadable, not PEM of the right kind, or the key does
            not belong to the certificate (``config.serve``, naming the key and the file).
    """
    if section.tls_cert is None or section.tls_key is None:
        return None
    cert = _read("tls_cert", section.tls_cert)
    key = _read("tls_key", section.tls_key)
    _check_pair(section.tls_cert, cert, section.tls_key, key)
    _warn_if_shared(section.tls_key)
    ca = None
    if section.tls_client_ca is not None:
        ca = _read("tls_client_ca", section.tls_client_ca)
        _certificates("tls_client_ca", section.tls_client_ca, ca)
    return ApiTls(section.tls_cert, section.tls_key, cert, key, section.tls_client_ca, ca)


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"[serve] {key} {path}: cannot be read: {exc.strerror}", code="config.serve"
        ) from exc


def _certificates(key: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise ConfigError(
            mismatch(f"[serve] {key} {path}", "PEM certificates", "none that parse"),
            code="config.serve",
        )
    return certs


def _check_pair(cert_path: Path, cert: bytes, key_path: Path, key: bytes) -> None:
    leaf = _certificates("tls_cert", cert_path, cert)[0]
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            mismatch(f"[serve] tls_key {key_path}", "an unencrypted PEM private key", exc),
            code="config.serve",
        ) from exc
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if private.public_key().public_bytes(enc, fmt) != leaf.public_key().public_bytes(enc, fmt):
        raise ConfigError(
            f"[serve] tls_key {key_path}: not the private key of the certificate in {cert_path}",
            code="config.serve",
        )


def _warn_if_shared(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "[serve] tls_key %s can be read by other users of this host (mode %o); chmod 600 it",
            path,
            mode,
        )
