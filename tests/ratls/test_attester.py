"""The RA-TLS channel's attester: signs with its certificate's key, judges peers by its policy."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.errors import AttestationError
from cvfl.ratls import RatlsSecurity
from tests.ratls.helpers import MR_ENCLAVE, CraftedProvider, policy, terms


def _security(provider: CraftedProvider, role: str = "leader") -> RatlsSecurity:
    return RatlsSecurity(provider, SimulatedVerifier(), policy(), terms=terms(role))


def test_signature_verifies_with_the_certificates_key() -> None:
    attester = _security(CraftedProvider()).attester
    assert attester.simulated and attester.provider
    signature = attester.sign(b"transcript")
    key = x509.load_der_x509_certificate(attester.certificate).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, b"transcript", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        key.verify(signature, b"another transcript", ec.ECDSA(hashes.SHA384()))


def test_peer_judged_by_the_channel_policy() -> None:
    judge = _security(CraftedProvider()).attester
    accepted = _security(CraftedProvider(), "follower").attester
    evidence = judge.verify_peer(accepted.certificate)
    assert evidence.identity.mr_enclave == MR_ENCLAVE
    stranger = _security(CraftedProvider(mr_enclave=b"\x07" * 32), "follower").attester
    with pytest.raises(AttestationError, match="mr_enclave"):
        judge.verify_peer(stranger.certificate)
