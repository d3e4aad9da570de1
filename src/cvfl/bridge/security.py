"""Channel security: the one interface behind which the bridge's transport protection sits.

The bridge never builds credentials itself. It asks a :class:`ChannelSecurity` to bind the
server's listening port, to open the client's channel, and to vouch for the peer of every stream.
``PlaintextSecurity`` is for development only and must be asked for by name; the attested RA-TLS
implementation lives in :mod:`cvfl.ratls`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import grpc

from cvfl.errors import ConfigError
from cvfl.logs import get_logger

if TYPE_CHECKING:
    from cvfl.attestation.evidence import VerifiedEvidence
    from cvfl.attestation.terms import JobTerms

log = get_logger(__name__)


@dataclass(frozen=True)
class PeerInfo:
    """Who is at the other end of a connection, as the channel security established it.

    Attributes:
        description: For logs and status lines (never a whole quote).
        terms: The peer's attested job terms; None when the channel attests nothing.
        certificate: The peer's attested certificate (DER); None likewise.
    """

    description: str
    terms: JobTerms | None = None
    certificate: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Connection:
    """A client channel to the peer and what the security learned about that peer."""

    channel: grpc.Channel
    peer: PeerInfo


class Binding(Protocol):
    """A listening address a security bound for a server; close it when the server stops."""

    @property
    def port(self) -> int:
        """The bound port (what a port of 0 became)."""
        ...

    def close(self) -> None:
        """Stop listening (idempotent)."""
        ...


class Attester(Protocol):
    """This party's attested credentials, for protocols that sign and verify beside the channel.

    Fast-mode PSI uses it: each side signs its key share with its attested certificate's key and
    checks the peer's certificate under the channel's own verifier and policy. A snapshot: the
    credentials current when the security was asked for it.
    """

    @property
    def certificate(self) -> bytes:
        """This party's attested certificate (DER)."""
        ...

    @property
    def simulated(self) -> bool:
        """Whether this party's evidence is simulated (no real TEE)."""
        ...

    @property
    def provider(self) -> str:
        """The evidence provider's name, for refusals."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with the certificate's key (ECDSA with SHA-384)."""
        ...

    def verify_peer(self, certificate: bytes) -> VerifiedEvidence:
        """Verify a peer's certificate under this channel's verifier and policy.

        Raises:
            AttestationError: the certificate or its evidence fails verification or the policy.
        """
        ...


class ChannelSecurity(Protocol):
    """How one party protects and authenticates its connections to the peer."""

    @property
    def name(self) -> str:
        """A short label for status lines, e.g. ``"ratls"`` or ``"insecure-plaintext"``."""
        ...

    @property
    def terms(self) -> JobTerms | None:
        """This party's attested job terms (None when the channel attests nothing)."""
        ...

    @property
    def local_certificate(self) -> bytes | None:
        """This party's current certificate (DER; None when the channel has none)."""
        ...

    @property
    def attester(self) -> Attester | None:
        """This party's attested credentials (None when the channel attests nothing)."""
        ...

    def for_own_party(self) -> ChannelSecurity:
        """The security for this party's own workers: same code, same terms, same role."""
        ...

    def bind(self, server: grpc.Server, address: str) -> Binding:
        """Make ``server``'s services reachable on ``address``; close the binding after stopping.

        Raises:
            ConfigError: the address cannot be bound (e.g. already in use).
        """
        ...

    def connect(self, target: str, timeout: float) -> Connection:
        """Open a channel to ``target`` after verifying the peer; raise a ``CvflError`` if not."""
        ...

    def authorize(self, context: grpc.ServicerContext) -> PeerInfo:
        """Check the caller of a server-side stream; return who it is.

        Raises:
            AttestationError: the caller is not an attested, accepted peer.
        """
        ...


@dataclass(frozen=True)
class PortBinding:
    """A port gRPC itself listens on (nothing to close beyond stopping the server)."""

    port: int

    def close(self) -> None:
        """Nothing to do: the server's own stop releases the port."""


class PlaintextSecurity:
    """No encryption, no authentication. Development only; says so loudly."""

    name = "insecure-plaintext"
    terms: JobTerms | None = None
    local_certificate: bytes | None = None
    attester: Attester | None = None

    def __init__(self) -> None:
        log.warning(
            "INSECURE: the bridge runs in plaintext without attestation; "
            "anyone on the network can read and alter the traffic"
        )

    def bind(self, server: grpc.Server, address: str) -> Binding:
        """Add an insecure port (never shared with another process: no SO_REUSEPORT).

        Raises:
            ConfigError: ``bridge.bind`` when the address cannot be bound.
        """
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot bind {address}: {exc}", code="bridge.bind") from None
        if port == 0:
            raise ConfigError(f"cannot bind {address} (in use?)", code="bridge.bind")
        return PortBinding(port)

    def connect(self, target: str, timeout: float) -> Connection:
        """Open an insecure channel (the peer is not verified)."""
        channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        return Connection(channel, PeerInfo(f"unauthenticated peer {target}"))

    def authorize(self, context: grpc.ServicerContext) -> PeerInfo:
        """Accept any caller: plaintext mode has no identity."""
        return PeerInfo(f"unauthenticated peer {context.peer()}")

    def for_own_party(self) -> PlaintextSecurity:
        """Plaintext for the party's workers too (their proof of the party key still counts)."""
        return self


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
    ("grpc.so_reuseport", 0),  # a second party on a port in use is refused, never shared
    ("grpc.server_handshake_timeout_ms", 10_000),  # a stalled TLS handshake is dropped
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]
