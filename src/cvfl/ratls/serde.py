"""Pure conversions between the attest messages and their protobuf form."""

from __future__ import annotations

from dataclasses import dataclass

from cvfl.wire import attest_pb2

PROTOCOL_VERSION = 2


@dataclass(frozen=True)
class AttestOffer:
    """What a client sends to be pinned: its certificate and a proof of possession."""

    certificate_der: bytes
    possession_signature: bytes
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class AttestGrant:
    """The server's answer: how it saw the client, and for how long the pin holds."""

    peer_description: str
    pin_ttl_seconds: int


def offer_to_proto(offer: AttestOffer) -> attest_pb2.AttestRequest:
    """Convert an offer to its request message."""
    return attest_pb2.AttestRequest(
        protocol_version=offer.protocol_version,
        certificate_der=offer.certificate_der,
        possession_signature=offer.possession_signature,
    )


def offer_from_proto(msg: attest_pb2.AttestRequest) -> AttestOffer:
    """Convert a request message to an offer."""
    return AttestOffer(
        certificate_der=bytes(msg.certificate_der),
        possession_signature=bytes(msg.possession_signature),
        protocol_version=int(msg.protocol_version),
    )


def grant_to_proto(grant: AttestGrant) -> attest_pb2.AttestResponse:
    """Convert a grant to its response message."""
    return attest_pb2.AttestResponse(
        peer_description=grant.peer_description,
        pin_ttl_seconds=grant.pin_ttl_seconds,
    )


def grant_from_proto(msg: attest_pb2.AttestResponse) -> AttestGrant:
    """Convert a response message to a grant."""
    return AttestGrant(
        peer_description=str(msg.peer_description),
        pin_ttl_seconds=int(msg.pin_ttl_seconds),
    )
