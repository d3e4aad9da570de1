"""Pure conversions between the enrolment messages and their dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from cvfl.errors import ProtocolError, mismatch
from cvfl.wire import workers_pb2

PROTOCOL_VERSION = 2


@dataclass(frozen=True)
class EnrolClaim:
    """What a worker says about itself when it enrols (and what rank 0 holds as its own)."""

    job_id: str
    role: str
    rank: int
    world_size: int


@dataclass(frozen=True)
class EnrolGrant:
    """Rank 0's answer: the group key and how rank 0 saw the caller."""

    group_key: bytes
    peer_description: str

    def __repr__(self) -> str:
        return (
            f"EnrolGrant(group_key=<{len(self.group_key)} bytes>, peer={self.peer_description!r})"
        )


def claim_to_proto(claim: EnrolClaim, proof: bytes) -> workers_pb2.EnrolRequest:
    """Encode a claim with its proof of the party key."""
    return workers_pb2.EnrolRequest(
        protocol_version=PROTOCOL_VERSION,
        job_id=claim.job_id,
        role=claim.role,
        rank=claim.rank,
        world_size=claim.world_size,
        proof=proof,
    )


def claim_from_proto(message: workers_pb2.EnrolRequest) -> EnrolClaim:
    """Decode a claim.

    Raises:
        ProtocolError: the caller speaks another version of the exchange.
    """
    if message.protocol_version != PROTOCOL_VERSION:
        raise ProtocolError(
            mismatch("enrolment protocol version", PROTOCOL_VERSION, message.protocol_version),
            code="workers.enrol_version",
        )
    return EnrolClaim(
        job_id=str(message.job_id),
        role=str(message.role),
        rank=int(message.rank),
        world_size=int(message.world_size),
    )


def grant_to_proto(grant: EnrolGrant) -> workers_pb2.EnrolResponse:
    """Encode a grant."""
    return workers_pb2.EnrolResponse(
        group_key=grant.group_key, peer_description=grant.peer_description
    )


def grant_from_proto(message: workers_pb2.EnrolResponse) -> EnrolGrant:
    """Decode a grant (the key's size is checked where it is used)."""
    return EnrolGrant(bytes(message.group_key), str(message.peer_description))
