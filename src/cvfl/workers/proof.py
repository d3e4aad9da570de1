"""The party secret a worker proves at enrolment, so that nothing it claims is taken on its word.

Every party runs the same measured enclave, and a peer's operator writes its own job file: the
peer's enclave can attest with this party's very job id and role. What it cannot have is this
party's sealing key. Each worker derives the **party key** from it (HKDF-SHA256, bound to the job
and the role) and sends, with its claim, an HMAC under that key over a transcript of the claim and
rank 0's certificate (the one it attested and pinned). Rank 0 recomputes it in constant time; an
enrolment without a valid proof is refused before the claim is even looked at, and does not stop
rank 0's group (a stranger must not be able to abort it).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cvfl.errors import AttestationError, mismatch
from cvfl.workers.serde import EnrolClaim

KEY_INFO = b"cvfl worker enrolment party key v1\0"
DOMAIN = b"cvfl worker enrolment proof v1\0"
PROOF_SIZE = 32


def party_key(sealing_key: bytes, job_id: str, role: str) -> bytes:
    """Derive the party key from the party's sealing key, for one job and role."""
    info = KEY_INFO + job_id.encode() + b"\0" + role.encode()
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(sealing_key)


def _transcript(claim: EnrolClaim, server_certificate: bytes | None) -> bytes:
    fields = [claim.job_id.encode(), claim.role.encode(), str(claim.rank).encode()]
    fields.append(str(claim.world_size).encode())
    fields.append(hashlib.sha256(server_certificate or b"").digest())
    return DOMAIN + b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def make_proof(key: bytes, claim: EnrolClaim, server_certificate: bytes | None) -> bytes:
    """The proof a worker sends with ``claim`` to the rank 0 holding ``server_certificate``."""
    return hmac.new(key, _transcript(claim, server_certificate), hashlib.sha256).digest()


def check_proof(
    key: bytes, claim: EnrolClaim, server_certificate: bytes | None, proof: bytes
) -> None:
    """Accept a proof made by :func:`make_proof` under the same party key, or raise.

    Raises:
        AttestationError: ``workers.enrol_proof`` (the caller does not hold this party's key).
    """
    expected = make_proof(key, claim, server_certificate)
    if len(proof) != PROOF_SIZE or not hmac.compare_digest(expected, proof):
        raise AttestationError(
            mismatch(
                "party secret proof",
                "an HMAC under this party's key (derived from its sealing key)",
                "an invalid one: the caller is not a worker of this party",
            ),
            code="workers.enrol_proof",
        )
