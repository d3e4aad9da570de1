"""RA-TLS certificates in Gramine's format: make them, and verify the evidence they carry.

A certificate is self-signed X.509 v3 with a fresh ECDSA P-384 key, subject and issuer
``CN=RATLS,O=GramineDevelopers,C=US``, signed ecdsa-with-SHA256, and carries the SGX quote twice
(docs/attestation-channel.md, Certificates):

- the legacy extension, whose OID Gramine encodes with a historical bug (the OID's own DER header
  is part of its content: on the wire ``06 0B 06 09 2A 86 48 86 F8 4D 8A 39 06``, i.e. the dotted
  form ``0.6.9.42.840.113741.1337.6``); its value is the raw quote, whose report_data is
  ``SHA256(SubjectPublicKeyInfo DER) || 32 zero bytes``;
- the TCG DICE tagged-evidence extension (OID 2.23.133.5.4.9): CBOR tag 60000 around
  ``[quote (bstr), claims (bstr)]``, where claims is a serialized CBOR map
  ``{"pubkey-hash": bstr(serialized [1, SHA256(SPKI)])}`` and the quote's report_data is
  ``SHA256(claims) || 32 zero bytes``.

Verifiers try the TCG extension first and fall back to the legacy one.

cvfl fills the last 32 bytes of report_data (zeros in Gramine's own certificates) with the SHA-256
of the party's job terms (:mod:`cvfl.attestation.terms`), carried in the clear in a cvfl extension
(:data:`TERMS_OID`), and names the two routes of its one-port front door
(:data:`ATTEST_NAME`, :data:`SESSION_NAME`) as DNS subject alternative names. A Gramine
certificate (zeros, no terms) still verifies; it just has no terms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cvfl.attestation.evidence import EvidenceProvider, QuoteVerifier, VerifiedEvidence
from cvfl.attestation.policy import Policy
from cvfl.attestation.quote import EnclaveIdentity, parse_quote
from cvfl.attestation.terms import JobTerms, decode_terms
from cvfl.errors import AttestationError, mismatch
from cvfl.logs import get_logger
from cvfl.ratls import cbor

log = get_logger(__name__)

LEGACY_QUOTE_OID = x509.ObjectIdentifier("0.6.9.42.840.113741.1337.6")
LEGACY_QUOTE_OID_WIRE = bytes.fromhex("060B06092A864886F84D8A3906")
TCG_EVIDENCE_OID = x509.ObjectIdentifier("2.23.133.5.4.9")
TCG_TEE_QUOTE_TAG = 60000
HASH_ALG_SHA256 = 1  # IANA named-information hash algorithm registry
PUBKEY_HASH_CLAIM = "pubkey-hash"
SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COMMON_NAME, "RATLS"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GramineDevelopers"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ]
)
# The server names of the one-port front door's two routes (TLS SNI); gRPC checks the one it
# dials against these subject alternative names (ssl_target_name_override).
ATTEST_NAME = "attest.cvfl.invalid"
SESSION_NAME = "session.cvfl.invalid"
# cvfl's job-terms extension: an OID under 2.25 (ITU-T X.667, derived from a random UUID).
TERMS_OID = x509.ObjectIdentifier("2.25.179012236532147683017624521375834910862")
NO_TERMS = bytes(32)
DEFAULT_VALIDITY = dt.timedelta(hours=1)
BACKDATE = dt.timedelta(minutes=1)
MAX_CERT_BYTES = 64 * 1024

EvidenceFormat = Literal["tcg", "legacy"]


@dataclass(frozen=True, repr=False)
class RatlsCredentials:
    """A fresh RA-TLS certificate and its private key (kept in memory, never written by cvfl)."""

    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    private_key: ec.EllipticCurvePrivateKey = field(compare=False)
    identity: EnclaveIdentity | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        short = fingerprint(self.cert_der)[:16]
        return f"RatlsCredentials(sha256={short}…, not_after={self.not_after.isoformat()})"


@dataclass(frozen=True)
class CertificateEvidence:
    """The quote found in a certificate, after the key and terms bindings were checked."""

    format: EvidenceFormat
    quote: bytes
    spki_sha256: bytes
    terms: JobTerms | None = None


@dataclass(frozen=True)
class AttestedCertificate:
    """A certificate whose evidence verified and passed the policy, with its attested terms."""

    evidence: VerifiedEvidence
    terms: JobTerms | None
    cert_der: bytes


def fingerprint(cert_der: bytes) -> str:
    """Return the SHA-256 of a certificate's DER as hex (its pin)."""
    return hashlib.sha256(cert_der).hexdigest()


def spki_der(cert: x509.Certificate) -> bytes:
    """Return the DER SubjectPublicKeyInfo of ``cert``.

    Raises:
        AttestationError: the public key is malformed or of an unsupported type.
    """
    try:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _refuse(
            mismatch("public key", "a valid EC or RSA key", exc), code="ratls.public_key"
        ) from None


def _report_data(digest: bytes, terms: JobTerms | None) -> bytes:
    return digest + (terms.digest() if terms is not None else NO_TERMS)


def legacy_report_data(spki: bytes, terms: JobTerms | None = None) -> bytes:
    """Return the report_data that binds ``spki`` (and ``terms``) in the legacy format."""
    return _report_data(hashlib.sha256(spki).digest(), terms)


def tcg_claims(spki: bytes) -> bytes:
    """Return the serialized claims map ``{"pubkey-hash": bstr([1, SHA256(spki)])}``."""
    entry = cbor2.dumps([HASH_ALG_SHA256, hashlib.sha256(spki).digest()])
    return bytes(cbor2.dumps({PUBKEY_HASH_CLAIM: entry}))


def make_certificate(
    provider: EvidenceProvider,
    *,
    valid_for: dt.timedelta = DEFAULT_VALIDITY,
    now: dt.datetime | None = None,
    terms: JobTerms | None = None,
) -> RatlsCredentials:
    """Make a fresh P-384 key and a self-signed RA-TLS certificate carrying its evidence.

    With ``terms``, both quotes bind their digest in the last 32 bytes of report_data and the
    certificate carries them in the :data:`TERMS_OID` extension.

    Raises:
        AttestationError: the provider could not produce a quote.
    """
    if valid_for <= dt.timedelta(0):
        raise AttestationError(
            mismatch("certificate validity", "a positive duration", valid_for),
            code="ratls.validity",
        )
    key = ec.generate_private_key(ec.SECP384R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    legacy_quote = provider.quote(legacy_report_data(spki, terms))
    claims = tcg_claims(spki)
    tcg_quote = provider.quote(_report_data(hashlib.sha256(claims).digest(), terms))
    evidence = cbor2.dumps(cbor2.CBORTag(TCG_TEE_QUOTE_TAG, [tcg_quote, claims]))
    start = (now or dt.datetime.now(dt.UTC)) - BACKDATE
    extras = _Extras(legacy_quote, bytes(evidence), terms.encode() if terms else None)
    cert = _build(key, start, start + BACKDATE + valid_for, extras)
    der = cert.public_bytes(serialization.Encoding.DER)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    log.debug("made RA-TLS certificate sha256=%s… (%s)", fingerprint(der)[:16], provider.name)
    return RatlsCredentials(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem,
        cert_der=der,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        private_key=key,
        identity=parse_quote(legacy_quote).identity,
    )


@dataclass(frozen=True)
class _Extras:
    legacy_quote: bytes
    tcg_evidence: bytes
    terms: bytes | None


def _build(
    key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extras: _Extras,
) -> x509.Certificate:
    public = key.public_key()
    names = [x509.DNSName(ATTEST_NAME), x509.DNSName(SESSION_NAME)]
    builder = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(SUBJECT)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(LEGACY_QUOTE_OID, extras.legacy_quote), critical=False
        )
        .add_extension(
            x509.UnrecognizedExtension(TCG_EVIDENCE_OID, extras.tcg_evidence), critical=False
        )
    )
    if extras.terms is not None:
        terms_ext = x509.UnrecognizedExtension(TERMS_OID, extras.terms)
        builder = builder.add_extension(terms_ext, critical=False)
    return builder.sign(key, hashes.SHA256())


def _refuse(message: str, *, code: str) -> AttestationError:
    return AttestationError(f"RA-TLS certificate refused: {message}", code=code)


def load_certificate(data: bytes) -> x509.Certificate:
    """Parse a PEM or DER certificate.

    Raises:
        AttestationError: not a certificate, or larger than :data:`MAX_CERT_BYTES`.
    """
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_CERT_BYTES:
        seen = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
        raise _refuse(
            mismatch("certificate size", f"at most {MAX_CERT_BYTES}", seen), code="ratls.parse"
        )
    try:
        if bytes(data).lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(bytes(data))
        return x509.load_der_x509_certificate(bytes(data))
    except (ValueError, x509.InvalidVersion) as exc:
        raise _refuse(
            mismatch("certificate", "X.509 PEM or DER", f"{exc}"), code="ratls.parse"
        ) from None


def _extension_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    except Exception as exc:
        # cryptography parses every extension here and raises ValueError, DuplicateExtension,
        # UnsupportedGeneralNameType (x400Address/ediPartyName names), or KeyError and TypeError
        # (e.g. an unknown or empty TLS feature list): all mean the certificate is malformed.
        seen = f"{type(exc).__name__}: {exc}"
        raise _refuse(
            mismatch("extensions", "well-formed, unique", seen), code="ratls.extensions"
        ) from None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise _refuse(
            mismatch(oid.dotted_string, "raw bytes", type(value).__name__), code="ratls.extensions"
        )
    return value.value


def _check_binding(quote: bytes, expected: bytes, what: str) -> bytes:
    """Check report_data's first half binds the key; return its second half (terms digest)."""
    seen = parse_quote(quote).identity.report_data
    if not hmac.compare_digest(seen[:32], expected):
        raise _refuse(
            mismatch(f"report_data[0:32] ({what})", expected.hex(), seen[:32].hex()),
            code="ratls.key_binding",
        )
    return seen[32:]


def _check_terms(cert: x509.Certificate, bound: bytes) -> JobTerms | None:
    """Return the certificate's terms after checking report_data binds exactly them."""
    raw = _extension_value(cert, TERMS_OID)
    if raw is None:
        if not hmac.compare_digest(bound, NO_TERMS):
            raise _refuse(
                mismatch("job terms", "in the certificate (report_data binds some)", "absent"),
                code="ratls.terms_binding",
            )
        return None
    terms = decode_terms(raw)
    if not hmac.compare_digest(terms.digest(), bound):
        raise _refuse(
            mismatch(
                "report_data[32:64] (SHA256 of the job terms)", terms.digest().hex(), bound.hex()
            ),
            code="ratls.terms_binding",
        )
    return terms


def _tcg_evidence(value: bytes, spki: bytes) -> tuple[bytes, bytes]:
    """Return the TCG quote and its report_data's terms half, after the key binding checks."""
    decoded = cbor.decode(value)
    if not isinstance(decoded, cbor.Tagged) or decoded.tag != TCG_TEE_QUOTE_TAG:
        seen = decoded.tag if isinstance(decoded, cbor.Tagged) else type(decoded).__name__
        raise _refuse(mismatch("CBOR tag", TCG_TEE_QUOTE_TAG, seen), code="ratls.tcg_evidence")
    body = decoded.item
    if not (isinstance(body, list) and len(body) == 2 and all(isinstance(b, bytes) for b in body)):
        raise _refuse(
            mismatch("tagged item", "[quote bstr, claims bstr]", body), code="ratls.tcg_evidence"
        )
    quote, claims = body
    assert isinstance(quote, bytes) and isinstance(claims, bytes)
    bound = _check_binding(quote, hashlib.sha256(claims).digest(), "SHA256 of the claims")
    _check_pubkey_claim(claims, spki)
    return quote, bound


def _check_pubkey_claim(claims: bytes, spki: bytes) -> None:
    decoded = cbor.decode(claims)
    if not isinstance(decoded, dict) or not isinstance(decoded.get(PUBKEY_HASH_CLAIM), bytes):
        raise _refuse(
            mismatch("claims", '{"pubkey-hash": bstr}', "absent"), code="ratls.tcg_evidence"
        )
    entry = decoded[PUBKEY_HASH_CLAIM]
    assert isinstance(entry, bytes)
    parsed = cbor.decode(entry)
    if not (isinstance(parsed, list) and len(parsed) == 2 and isinstance(parsed[1], bytes)):
        raise _refuse(mismatch("pubkey-hash", "[alg, hash]", parsed), code="ratls.tcg_evidence")
    if parsed[0] != HASH_ALG_SHA256:
        raise _refuse(mismatch("pubkey-hash algorithm", 1, parsed[0]), code="ratls.tcg_evidence")
    expected = hashlib.sha256(spki).digest()
    if not hmac.compare_digest(parsed[1], expected):
        raise _refuse(
            mismatch("pubkey-hash claim", expected.hex(), parsed[1].hex()), code="ratls.key_binding"
        )


def extract_evidence(cert: x509.Certificate) -> CertificateEvidence:
    """Find the quote in ``cert`` (TCG first, then legacy); check it binds the key and terms.

    Raises:
        AttestationError: no evidence extension, malformed evidence or terms, or a binding
            mismatch (key or terms).
    """
    spki = spki_der(cert)
    spki_hash = hashlib.sha256(spki).digest()
    tcg = _extension_value(cert, TCG_EVIDENCE_OID)
    if tcg is not None:
        quote, bound = _tcg_evidence(tcg, spki)
        return CertificateEvidence("tcg", quote, spki_hash, _check_terms(cert, bound))
    legacy = _extension_value(cert, LEGACY_QUOTE_OID)
    if legacy is None:
        raise _refuse(
            mismatch("evidence extension", f"{TCG_EVIDENCE_OID.dotted_string} or legacy", "none"),
            code="ratls.no_evidence",
        )
    bound = _check_binding(legacy, spki_hash, "SHA256 of the SubjectPublicKeyInfo")
    return CertificateEvidence("legacy", legacy, spki_hash, _check_terms(cert, bound))


def check_validity(cert: x509.Certificate, at: int | None = None) -> None:
    """Check that UNIX time ``at`` (now when None) lies in the certificate's validity window.

    Raises:
        AttestationError: the certificate is not yet valid or has expired.
    """
    moment = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    if moment < cert.not_valid_before_utc:
        expected = f"not before {cert.not_valid_before_utc.isoformat()}"
        raise _refuse(
            mismatch("certificate validity", expected, moment.isoformat()), code="ratls.validity"
        )
    if moment > cert.not_valid_after_utc:
        expected = f"not after {cert.not_valid_after_utc.isoformat()}"
        raise _refuse(
            mismatch("certificate validity", expected, moment.isoformat()), code="ratls.validity"
        )


def check_self_signature(cert: x509.Certificate) -> None:
    """Check that ``cert`` is issued by its own subject and signed by its own key.

    Raises:
        AttestationError: issuer differs from subject, or the signature does not verify.
    """
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        seen = str(exc) or type(exc).__name__
        raise _refuse(
            mismatch("self-signature", "valid", seen), code="ratls.self_signature"
        ) from None


def verify_certificate(
    cert: bytes,
    verifier: QuoteVerifier,
    policy: Policy,
    *,
    at: int | None = None,
    quote_at: int | None = None,
) -> VerifiedEvidence:
    """Verify an RA-TLS certificate (PEM or DER) and return its verified evidence.

    Checks, in order: the evidence extension and its key binding, the validity window at ``at``,
    the self-signature, then the quote with ``verifier`` (at ``quote_at``, default ``at``) and
    ``policy``.

    Raises:
        AttestationError: naming the check that failed with the expected and seen values.
    """
    return verify_attested(cert, verifier, policy, at=at, quote_at=quote_at).evidence


def verify_attested(
    cert: bytes,
    verifier: QuoteVerifier,
    policy: Policy,
    *,
    at: int | None = None,
    quote_at: int | None = None,
) -> AttestedCertificate:
    """Like :func:`verify_certificate`, also returning the attested job terms (if any).

    Raises:
        AttestationError: naming the check that failed with the expected and seen values.
    """
    parsed = load_certificate(cert)
    evidence = extract_evidence(parsed)
    check_validity(parsed, at)
    check_self_signature(parsed)
    verified = verifier.verify(evidence.quote, at=at if quote_at is None else quote_at)
    policy.check(verified)
    der = parsed.public_bytes(serialization.Encoding.DER)
    return AttestedCertificate(verified, evidence.terms, der)
