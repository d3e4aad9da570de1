"""What can be checked of a real DCAP quote without collateral, before anything is fetched.

A quote whose own signatures do not hold must not make this party fetch collateral: anyone who
can reach an attested port could otherwise make it issue slow outbound requests to the PCCS.
:func:`check_quote_locally` therefore verifies, with ``cryptography`` and no network:

1. the signature data's structure (ISV signature, attestation key, QE report and its signature,
   QE authentication data, certification data of type 5: the PCK certificate chain in PEM);
2. the PCK chain up to Intel: the PCK platform/processor CA must be a CA certificate signed by
   the pinned Intel SGX Root CA key (:data:`INTEL_SGX_ROOT_CA_KEY`, the root dcap-qvl anchors
   at; the copy of the root inside the quote is not relied on, as dcap-qvl does not rely on it),
   and the PCK leaf must be issued and signed by that CA;
3. the QE report: signed by the PCK leaf's key, and its report data binds the attestation key
   (SHA-256 of the key and the QE authentication data, then 32 zero bytes);
4. the quote: header and enclave report signed by the attestation key.

What needs collateral (CRLs, the QE identity, the TCB level, validity dates) is left to dcap-qvl,
which checks all of the above again. Layout of the signature data (little-endian integers):
``isv_signature[64] attestation_key[64] qe_report[384] qe_report_signature[64]
qe_auth_len:u16 qe_auth[qe_auth_len] cert_type:u16 cert_len:u32 cert_data[cert_len]``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cvfl.attestation.quote import Quote
from cvfl.errors import AttestationError, mismatch

# The Intel SGX Root CA's public key (P-256, uncompressed point): the trust anchor built into
# dcap-qvl and the root of the issuer chains in Intel's collateral. A test checks it against both.
INTEL_SGX_ROOT_CA_KEY = bytes.fromhex(
    "040ba9c4c0c0c86193a3fe23d6b02cda10a8bbd4e88e48b4458561a36e705525f5"
    "67918e2edc88e40d860bd0cc4ee26aacc988e505a953558c453f6b0904ae7394"
)
CERT_TYPE_PCK_CHAIN = 5
_FIXED = struct.Struct("<64s64s384s64sH")  # up to and including the QE auth data length
_CERT_HEADER = struct.Struct("<HI")
_REPORT_DATA = slice(320, 384)


@dataclass(frozen=True)
class SignatureData:
    """The parts of a v3 quote's ECDSA-P256 signature data."""

    isv_signature: bytes
    attestation_key: bytes
    qe_report: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    cert_type: int
    cert_data: bytes


def parse_signature_data(data: bytes) -> SignatureData:
    """Split a quote's signature data, refusing anything that does not add up exactly.

    Raises:
        AttestationError: ``attestation.quote_signature_data``, naming the field.
    """
    if len(data) < _FIXED.size:
        raise _malformed(mismatch("length", f"at least {_FIXED.size}", len(data)))
    isv, key, qe_report, qe_sig, auth_len = _FIXED.unpack_from(data)
    at = _FIXED.size + auth_len
    if len(data) < at + _CERT_HEADER.size:
        room = len(data) - _FIXED.size - _CERT_HEADER.size
        raise _malformed(mismatch("QE auth data length", f"at most {room}", auth_len))
    cert_type, cert_len = _CERT_HEADER.unpack_from(data, at)
    start = at + _CERT_HEADER.size
    if start + cert_len != len(data):
        raise _malformed(mismatch("certification data length", len(data) - start, cert_len))
    return SignatureData(
        isv, key, qe_report, qe_sig, data[_FIXED.size : at], cert_type, data[start:]
    )


def check_quote_locally(quote: Quote, root_key: bytes = INTEL_SGX_ROOT_CA_KEY) -> None:
    """Verify ``quote``'s structure, PCK chain, QE report and signature (no collateral needed).

    Raises:
        AttestationError: ``attestation.quote_signature_data`` for a malformed structure, else
            ``attestation.dcap_failed`` naming the check that failed.
    """
    sig = parse_signature_data(quote.signature_data)
    if sig.cert_type != CERT_TYPE_PCK_CHAIN:
        raise _malformed(
            mismatch("certification data type", f"{CERT_TYPE_PCK_CHAIN} (PCK chain)", sig.cert_type)
        )
    pck_key = check_pck_chain(sig.cert_data, root_key)
    _verify(pck_key, sig.qe_report_signature, sig.qe_report, "QE report signature (PCK key)")
    bound = hashlib.sha256(sig.attestation_key + sig.qe_auth_data).digest() + bytes(32)
    if sig.qe_report[_REPORT_DATA] != bound:
        raise _failed(
            "QE report data: expected SHA-256 of the attestation key and QE auth data, "
            "then 32 zero bytes; seen other bytes"
        )
    attestation_key = _point(b"\x04" + sig.attestation_key, "attestation key")
    _verify(attestation_key, sig.isv_signature, quote.signed_part, "quote signature")


def check_pck_chain(
    pem: bytes, root_key: bytes = INTEL_SGX_ROOT_CA_KEY
) -> ec.EllipticCurvePublicKey:
    """Check the PCK leaf and its CA up to the pinned root key; return the leaf's key.

    Raises:
        AttestationError: ``attestation.dcap_failed`` naming the certificate that failed.
    """
    try:
        certs = x509.load_pem_x509_certificates(pem.rstrip(b"\0"))
        if len(certs) < 2:
            raise _failed(mismatch("PCK certificate chain length", "at least 2", len(certs)))
        return _check_leaf_and_ca(certs[0], certs[1], _point(root_key, "Intel SGX Root CA key"))
    except ValueError as exc:  # certificates parse lazily: a bad field fails when read
        raise _failed(f"PCK certificate chain: unreadable certificate ({exc})") from None


def _check_leaf_and_ca(
    leaf: x509.Certificate, ca: x509.Certificate, root: ec.EllipticCurvePublicKey
) -> ec.EllipticCurvePublicKey:
    _check_signed_by(ca, root, "the PCK CA certificate is not signed by the Intel SGX Root CA")
    if not _is_ca(ca):
        raise _failed("PCK certificate chain: the PCK CA certificate is not a CA certificate")
    if leaf.issuer != ca.subject:
        raise _failed(
            "PCK certificate chain: "
            + mismatch("leaf issuer", ca.subject.rfc4514_string(), leaf.issuer.rfc4514_string())
        )
    _check_signed_by(leaf, _ec_key(ca, "PCK CA"), "the PCK leaf is not signed by the PCK CA")
    return _ec_key(leaf, "PCK leaf")


def _check_signed_by(cert: x509.Certificate, key: ec.EllipticCurvePublicKey, what: str) -> None:
    try:
        algorithm = cert.signature_hash_algorithm
        if not isinstance(algorithm, hashes.SHA256):
            raise _failed(f"PCK certificate chain: {what} (not ECDSA with SHA-256)")
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        raise _failed(f"PCK certificate chain: {what}") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def _ec_key(cert: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise _failed(f"PCK certificate chain: the {what} key is not a P-256 key")
    return key


def _point(encoded: bytes, what: str) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), encoded)
    except ValueError:
        raise _failed(f"{what}: not a point on P-256") from None


def _verify(key: ec.EllipticCurvePublicKey, raw: bytes, message: bytes, what: str) -> None:
    """Verify a raw ``r || s`` (big-endian, 32 bytes each) ECDSA-P256-SHA256 signature."""
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _failed(f"{what}: does not verify") from None


def _malformed(message: str) -> AttestationError:
    return AttestationError(
        f"malformed quote: signature data: {message}", code="attestation.quote_signature_data"
    )


def _failed(message: str) -> AttestationError:
    return AttestationError(
        f"DCAP verification failed (checked locally, before any collateral fetch): {message}",
        code="attestation.dcap_failed",
    )
