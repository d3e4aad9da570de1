"""Channel security: the one interface behind which the bridge's transport protection sits.

The bridge never builds credentials itself. It asks a :class:`ChannelSecurity` to bind the
server's listening port, to open the client's channel, and to vouch for the peer of every stream.
``PlaintextSecurity`` is for development only and must be asked for by name; the attested RA-TLS
implementation lives in :mod:`cvfl.ratls`.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from cvfl.logs import get_logger

log = get_logger(__name__)


class ChannelSecurity(Protocol):
    """How one party protects and authenticates its bridge connections."""

    @property
    def name(self) -> str:
        """A short label for status lines, e.g. ``"ratls"`` or ``"insecure-plaintext"``."""
        ...

    def bind(self, server: grpc.Server, address: str) -> int:
        """Add the listening port(s) for ``address`` to ``server``; return the bound port."""
        ...

    def connect(self, target: str, timeout: float) -> grpc.Channel:
        """Open a channel to ``target`` after verifying the peer; raise a ``CvflError`` if not."""
        ...

    def authorize(self, context: grpc.ServicerContext) -> str:
        """Check the caller of a server-side stream; return a description of the peer.

        Raises:
            AttestationError: the caller is not an attested, accepted peer.
        """
        ...


class PlaintextSecurity:
    """No encryption, no authentication. Development only; says so loudly."""

    name = "insecure-plaintext"

    def __init__(self) -> None:
        log.warning(
            "INSECURE: the bridge runs in plaintext without attestation; "
            "anyone on the network can read and alter the traffic"
        )

    def bind(self, server: grpc.Server, address: str) -> int:
        """Add an insecure port."""
        return server.add_insecure_port(address)

    def connect(self, target: str, timeout: float) -> grpc.Channel:
        """Open an insecure channel (the peer is not verified)."""
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)

    def authorize(self, context: grpc.ServicerContext) -> str:
        """Accept any caller: plaintext mode has no identity."""
        return f"unauthenticated peer {context.peer()}"


# Large enough for one batch of cut-layer tensors (batch 4096 x 1024 float32 = 16 MiB).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
SERVER_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]
