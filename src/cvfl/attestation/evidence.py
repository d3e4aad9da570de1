"""The two interfaces of attestation: who makes evidence, and who checks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cvfl.attestation.quote import EnclaveIdentity
from cvfl.errors import AttestationError, mismatch

REPORT_DATA_LEN = 64

# TCB statuses a DCAP verification can report (Intel's names, as dcap-qvl returns them).
TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
# The status the simulated verifier reports: no platform, so no TCB to speak of.
SIMULATED_TCB_STATUS = "Simulated"


class EvidenceProvider(Protocol):
    """Something that can produce a quote binding 64 bytes of caller data to this enclave."""

    @property
    def name(self) -> str:
        """Short label: ``"gramine"`` or ``"simulated"``."""
        ...

    @property
    def simulated(self) -> bool:
        """True when the evidence is software-made (no hardware guarantee at all)."""
        ...

    def quote(self, report_data: bytes) -> bytes:
        """Return a quote whose report_data is exactly ``report_data`` (64 bytes)."""
        ...


@dataclass(frozen=True)
class VerifiedEvidence:
    """The outcome of a successful signature/collateral check (before the policy)."""

    identity: EnclaveIdentity
    tcb_status: str
    advisory_ids: tuple[str, ...]
    simulated: bool


class QuoteVerifier(Protocol):
    """Checks a quote's signature chain; does not apply the identity policy."""

    def verify(self, quote: bytes, *, at: int | None = None) -> VerifiedEvidence:
        """Verify ``quote`` at UNIX time ``at`` (now when None).

        Raises:
            AttestationError: the quote is malformed, its signature or collateral fails.
        """
        ...


def check_report_data(report_data: bytes) -> bytes:
    """Return ``report_data`` as bytes after checking it is exactly 64 bytes long.

    Raises:
        AttestationError: wrong type or length.
    """
    if not isinstance(report_data, bytes | bytearray):
        raise AttestationError(
            mismatch("report_data type", "bytes", type(report_data).__name__),
            code="attestation.report_data",
        )
    if len(report_data) != REPORT_DATA_LEN:
        raise AttestationError(
            mismatch("report_data length", REPORT_DATA_LEN, len(report_data)),
            code="attestation.report_data",
        )
    return bytes(report_data)
