"""RA-TLS certificates: Gramine's format, both evidence extensions, and every refusal path."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvfl.attestation.dcap import DcapVerifier, FileCollateral
from cvfl.attestation.evidence import VerifiedEvidence
from cvfl.attestation.policy import Policy
from cvfl.attestation.quote import parse_quote
from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.errors import AttestationError
from cvfl.ratls import extract_evidence, load_certificate, make_certificate, verify_certificate
from cvfl.ratls.cert import (
    LEGACY_QUOTE_OID,
    LEGACY_QUOTE_OID_WIRE,
    SUBJECT,
    TCG_EVIDENCE_OID,
    legacy_report_data,
    spki_der,
    tcg_claims,
)

from .helpers import CraftedProvider, policy

SGX = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "sgx"
T_VALID = 1750334171  # inside the DCAP collateral's window (testdata README)
PROVIDER = CraftedProvider()
KEY = ec.generate_private_key(ec.SECP384R1())


def _vector(name: str) -> Path:
    path = SGX / name
    if not path.is_file():
        pytest.skip(f"test vector {path} is absent (../shared/testdata is not checked out here)")
    return path


def _build(
    extensions: list[tuple[x509.ObjectIdentifier, bytes]],
    *,
    key: ec.EllipticCurvePrivateKey = KEY,
    signer: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(SUBJECT)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    for oid, value in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
    return builder.sign(signer or key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _spki(key: ec.EllipticCurvePrivateKey = KEY) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _verify(der: bytes) -> VerifiedEvidence:
    return verify_certificate(der, SimulatedVerifier(), policy())


def test_made_certificate_has_gramines_shape() -> None:
    creds = make_certificate(PROVIDER, valid_for=dt.timedelta(minutes=30))
    cert = x509.load_der_x509_certificate(creds.cert_der)
    assert cert.subject == SUBJECT and cert.issuer == SUBJECT
    assert cert.subject.rfc4514_string() == "C=US,O=GramineDevelopers,CN=RATLS"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert cert.version == x509.Version.v3
    now = dt.datetime.now(dt.UTC)
    assert now - dt.timedelta(minutes=2) < cert.not_valid_before_utc < now
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(minutes=31)
    assert LEGACY_QUOTE_OID_WIRE in creds.cert_der  # Gramine's historic OID bytes on the wire
    assert b"PRIVATE KEY" in creds.key_pem and b"PRIVATE" not in repr(creds).encode()


def test_both_extensions_bind_the_key() -> None:
    creds = make_certificate(PROVIDER)
    cert = x509.load_der_x509_certificate(creds.cert_der)
    spki = spki_der(cert)
    legacy = cert.extensions.get_extension_for_oid(LEGACY_QUOTE_OID).value.value  # type: ignore[attr-defined]
    assert parse_quote(legacy).identity.report_data == hashlib.sha256(spki).digest() + bytes(32)
    tagged = cbor2.loads(cert.extensions.get_extension_for_oid(TCG_EVIDENCE_OID).value.value)  # type: ignore[attr-defined]
    assert tagged.tag == 60000
    quote, claims = tagged.value
    assert claims == tcg_claims(spki)
    entry = cbor2.loads(claims)["pubkey-hash"]
    assert cbor2.loads(entry) == [1, hashlib.sha256(spki).digest()]
    assert parse_quote(quote).identity.report_data == hashlib.sha256(claims).digest() + bytes(32)
    assert extract_evidence(cert).format == "tcg"
    evidence = _verify(creds.cert_der)
    assert evidence.simulated and evidence.identity.mr_enclave == PROVIDER.mr_enclave
    assert _verify(creds.cert_pem) == evidence  # PEM works too


def test_legacy_only_certificate_falls_back() -> None:
    der = _build([(LEGACY_QUOTE_OID, PROVIDER.quote(legacy_report_data(_spki())))])
    assert extract_evidence(load_certificate(der)).format == "legacy"
    assert _verify(der).identity.mr_enclave == PROVIDER.mr_enclave


def test_broken_tcg_evidence_is_not_rescued_by_legacy() -> None:
    good_legacy = PROVIDER.quote(legacy_report_data(_spki()))
    der = _build([(LEGACY_QUOTE_OID, good_legacy), (TCG_EVIDENCE_OID, b"\xd9\xea\x60\x80")])
    with pytest.raises(AttestationError) as info:
        _verify(der)
    assert info.value.code == "ratls.tcg_evidence"


def test_no_evidence_extension_is_refused() -> None:
    with pytest.raises(AttestationError) as info:
        _verify(_build([]))
    assert "evidence extension" in info.value.message and "seen none" in info.value.message


def test_foreign_signature_is_refused() -> None:
    quote = PROVIDER.quote(legacy_report_data(_spki()))
    der = _build([(LEGACY_QUOTE_OID, quote)], signer=ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(AttestationError) as info:
        _verify(der)
    assert info.value.code == "ratls.self_signature"
    assert "self-signature: expected valid" in info.value.message


def test_validity_window_is_checked_at_the_given_time() -> None:
    creds = make_certificate(PROVIDER)
    later = int((creds.not_after + dt.timedelta(seconds=5)).timestamp())
    with pytest.raises(AttestationError) as info:
        verify_certificate(creds.cert_der, SimulatedVerifier(), policy(), at=later)
    assert "certificate validity: expected not after" in info.value.message
    earlier = int((creds.not_before - dt.timedelta(seconds=5)).timestamp())
    with pytest.raises(AttestationError, match="expected not before"):
        verify_certificate(creds.cert_der, SimulatedVerifier(), policy(), at=earlier)


def test_gramine_v1_certificate_parses_and_binds_its_key() -> None:
    cert = load_certificate(_vector("gramine_v1_ratls_cert.pem").read_bytes())
    assert len(spki_der(cert)) == 422
    evidence = extract_evidence(cert)  # raises on a key-binding mismatch
    assert evidence.format == "legacy"
    assert evidence.spki_sha256 == hashlib.sha256(spki_der(cert)).digest()
    identity = parse_quote(evidence.quote).identity
    assert identity.report_data == evidence.spki_sha256 + bytes(32)
    assert identity.mr_enclave.hex().startswith("d1d2ca3da743b572")
    assert identity.debug


def test_gramine_v1_certificate_is_refused_by_dcap_and_by_a_default_policy() -> None:
    pem = _vector("gramine_v1_ratls_cert.pem").read_bytes()
    dcap = DcapVerifier(FileCollateral(_vector("dcap_quote_v3_collateral.json")))
    with pytest.raises(AttestationError):  # its PCK chain ends at a pre-production root
        verify_certificate(pem, dcap, Policy(allow_debug=True), at=T_VALID)
    identity = parse_quote(extract_evidence(load_certificate(pem)).quote).identity
    as_if_verified = VerifiedEvidence(identity, "UpToDate", (), simulated=False)
    with pytest.raises(AttestationError) as info:
        Policy(allow_any_identity=True).check(as_if_verified)
    assert "debug: expected false" in info.value.message and "seen true" in info.value.message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(legacy=st.none() | st.binary(max_size=900), tcg=st.none() | st.binary(max_size=900))
def test_garbage_extensions_end_in_a_clean_refusal(legacy: bytes | None, tcg: bytes | None) -> None:
    extensions = [(LEGACY_QUOTE_OID, legacy)] if legacy is not None else []
    extensions += [(TCG_EVIDENCE_OID, tcg)] if tcg is not None else []
    with pytest.raises(AttestationError):
        _verify(_build(extensions))


cbor_leaf = st.integers(0, 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=20)
cbor_tree = st.recursive(
    cbor_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(tag=st.sampled_from([60000, 60001, 1, 24]), body=cbor_tree)
def test_well_formed_but_wrong_cbor_evidence_is_refused(tag: int, body: object) -> None:
    value = cbor2.dumps(cbor2.CBORTag(tag, body))
    with pytest.raises(AttestationError):
        _verify(_build([(TCG_EVIDENCE_OID, value)]))


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=3000))
def test_random_bytes_are_not_a_certificate(data: bytes) -> None:
    with pytest.raises(AttestationError):
        _verify(data)


def test_tampered_certificate_bytes_are_refused() -> None:
    der = bytearray(make_certificate(PROVIDER).cert_der)
    for index in range(0, len(der), 13):
        flipped = bytearray(der)
        flipped[index] ^= 0x01
        with pytest.raises(AttestationError):
            _verify(bytes(flipped))
