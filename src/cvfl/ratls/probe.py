"""Fetch a server's TLS certificate without trusting it yet (the "attest" half of attest-pin)."""

from __future__ import annotations

import socket
import ssl

from cvfl.errors import ConfigError, PeerUnavailableError, mismatch
from cvfl.ratls.cert import ATTEST_NAME


def split_target(target: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port.

    Raises:
        ConfigError: not of that form.
    """
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(mismatch("peer address", "host:port", repr(target)), code="ratls.target")
    return host, int(port)


def fetch_certificate(
    host: str, port: int, timeout: float, *, server_name: str = ATTEST_NAME
) -> bytes:
    """Return the DER certificate the TLS server at ``host:port`` presents (unverified).

    ``server_name`` is sent as SNI: a cvfl front door routes it (the attest route by default).

    Raises:
        PeerUnavailableError: the server could not be reached or the TLS handshake failed.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the certificate is verified by its evidence, not a CA
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        with (
            socket.create_connection((bare, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=server_name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise PeerUnavailableError(
            f"cannot fetch the TLS certificate of {host}:{port}: {exc}", code="ratls.unreachable"
        ) from None
    if not der:
        raise PeerUnavailableError(
            mismatch(f"TLS certificate of {host}:{port}", "one", "none"), code="ratls.unreachable"
        )
    return der
