"""Proof that the caller of ``Attest`` holds the private key of the certificate it offers.

A certificate and its quote are public: anyone who saw them could offer them. Before the server
pins a client certificate, the client signs a transcript that binds its certificate to the
server's certificate, with the certificate's own key. Mutual TLS would stop a replayer anyway (the
handshake needs the key); this check refuses it earlier, with a clear reason, and keeps the pin set
free of certificates nobody can use.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cvfl.errors import AttestationError, mismatch
from cvfl.ratls.cert import load_certificate

DOMAIN = b"cvfl ratls proof of possession v1\0"


def transcript(server_cert_der: bytes, client_cert_der: bytes) -> bytes:
    """Return the bytes the client signs: a domain label and both certificates' SHA-256."""
    return (
        DOMAIN + hashlib.sha256(server_cert_der).digest() + hashlib.sha256(client_cert_der).digest()
    )


def sign(key: ec.EllipticCurvePrivateKey, server_cert_der: bytes, client_cert_der: bytes) -> bytes:
    """Sign the transcript with the client certificate's key (ECDSA with SHA-384)."""
    return key.sign(transcript(server_cert_der, client_cert_der), ec.ECDSA(hashes.SHA384()))


def check(signature: bytes, server_cert_der: bytes, client_cert_der: bytes) -> None:
    """Check a proof of possession made by :func:`sign`.

    Raises:
        AttestationError: the client key is not an EC key or the signature does not verify.
    """
    public = load_certificate(client_cert_der).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise AttestationError(
            mismatch("client key type", "ECDSA", type(public).__name__),
            code="ratls.possession",
        )
    try:
        public.verify(
            signature, transcript(server_cert_der, client_cert_der), ec.ECDSA(hashes.SHA384())
        )
    except (InvalidSignature, ValueError):
        raise AttestationError(
            mismatch(
                "proof of possession",
                "a signature by the certificate's private key over this server's certificate",
                "an invalid signature (the caller does not hold the key)",
            ),
            code="ratls.possession",
        ) from None
