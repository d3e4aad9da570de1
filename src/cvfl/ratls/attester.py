"""An RA-TLS certificate as an :class:`~cvfl.bridge.security.Attester`.

It signs with the certificate's key and verifies a peer's certificate under the channel's own
verifier and policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cvfl.attestation.evidence import EvidenceProvider, QuoteVerifier, VerifiedEvidence
from cvfl.attestation.policy import Policy
from cvfl.ratls.cert import verify_certificate


@dataclass(frozen=True)
class CertificateAttester:
    """One RA-TLS certificate with its key, and the rules its channel judges peers by."""

    certificate: bytes = field(repr=False)
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    verifier: QuoteVerifier
    policy: Policy
    evidence: EvidenceProvider = field(repr=False)

    @property
    def simulated(self) -> bool:
        """Whether the evidence behind the certificate is simulated."""
        return self.evidence.simulated

    @property
    def provider(self) -> str:
        """The evidence provider's name."""
        return self.evidence.name

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with the certificate's key (ECDSA with SHA-384)."""
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA384()))

    def verify_peer(self, certificate: bytes) -> VerifiedEvidence:
        """Verify a peer's RA-TLS certificate under this channel's verifier and policy.

        Raises:
            AttestationError: the certificate or its evidence fails, or the policy refuses it.
        """
        return verify_certificate(certificate, self.verifier, self.policy)
