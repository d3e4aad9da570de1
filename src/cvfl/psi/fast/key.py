"""Fast mode's session key and keyed hash.

Python gRPC does not expose TLS exporter keys, so the two parties run a fresh X25519 exchange
inside the PSI stream. Each key share carries the sender's RA-TLS certificate and an ECDSA
signature by that certificate's key over both hellos and the share, so only the attested enclave
could have made it. The HMAC key is ``HKDF-SHA256(X25519 secret, salt = transcript hash, info)``
where the transcript hash covers both hellos, both public keys and both certificates. The key
lives only in this process's memory, in a :class:`cvfl.psi.keyed.KeyedHasher`, for one run.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cvfl.errors import AlignmentError, mismatch
from cvfl.psi.keyed import KeyedHasher
from cvfl.psi.serde import KeyShare, PsiHello

SHARE_DOMAIN = b"cvfl/psi/fast/key-share/v1\0"
TRANSCRIPT_DOMAIN = b"cvfl/psi/fast/transcript/v1\0"
HKDF_INFO = b"cvfl/psi/fast/hmac-key/v1"
PUBLIC_KEY_BYTES = 32


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def hello_bytes(hello: PsiHello) -> bytes:
    """Return a canonical encoding of a hello (independent of protobuf serialisation)."""
    return b"".join(
        (
            struct.pack(">IQI", hello.version, hello.count, hello.batch_size),
            _lp(hello.job_id.encode("utf-8")),
            _lp(hello.role.encode("utf-8")),
            _lp(hello.mode.encode("utf-8")),
            _lp(hello.group.encode("utf-8")),
            _lp(hello.terms),
        )
    )


def share_transcript(role: str, hellos: tuple[PsiHello, PsiHello], share: KeyShare) -> bytes:
    """Return what ``role`` signs: both hellos (leader's first), its public key and certificate."""
    leader, follower = hellos
    return b"".join(
        (
            SHARE_DOMAIN,
            _lp(role.encode("utf-8")),
            _lp(hello_bytes(leader)),
            _lp(hello_bytes(follower)),
            _lp(share.public_key),
            _lp(hashlib.sha256(share.certificate).digest()),
        )
    )


def session_transcript(
    hellos: tuple[PsiHello, PsiHello], shares: tuple[KeyShare, KeyShare]
) -> bytes:
    """Return the SHA-256 transcript hash over both hellos and both shares (leader's first)."""
    digest = hashlib.sha256(TRANSCRIPT_DOMAIN)
    for hello in hellos:
        digest.update(_lp(hello_bytes(hello)))
    for share in shares:
        digest.update(_lp(share.public_key) + _lp(share.certificate))
    return digest.digest()


def check_share_signature(share: KeyShare, transcript: bytes) -> None:
    """Check that ``share.signature`` was made over ``transcript`` by the certificate's key.

    The signer is the peer's :class:`~cvfl.bridge.security.Attester` (ECDSA with SHA-384).

    Raises:
        AlignmentError: the certificate is unreadable, not an EC key, or the signature fails.
    """
    try:
        public = x509.load_der_x509_certificate(share.certificate).public_key()
    except (ValueError, x509.InvalidVersion) as exc:
        raise _bad_share(
            mismatch("peer key share certificate", "an X.509 certificate (DER)", f"{exc}")
        ) from None
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise _bad_share(mismatch("peer certificate key type", "ECDSA", type(public).__name__))
    try:
        public.verify(share.signature, transcript, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        raise _bad_share(
            mismatch(
                "peer key share signature",
                "a signature by its attested certificate's key over both hellos and the share",
                "an invalid signature",
            )
        ) from None


def _bad_share(message: str) -> AlignmentError:
    return AlignmentError(message, code="psi.bad_key_share")


class KeyExchange:
    """This party's ephemeral X25519 key for one run; fresh per construction, never exported."""

    __slots__ = ("_private", "public_key")

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public_key = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def __repr__(self) -> str:
        return "KeyExchange(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a PSI key exchange holds a secret key and cannot be pickled")

    def derive(self, peer_public: bytes, transcript: bytes) -> KeyedHasher:
        """Derive the session's keyed hasher from the peer's public key and the transcript hash.

        Raises:
            AlignmentError: the peer's public key is malformed or of low order.
        """
        if len(peer_public) != PUBLIC_KEY_BYTES:
            raise _bad_share(
                mismatch("peer X25519 public key length", PUBLIC_KEY_BYTES, len(peer_public))
            )
        try:
            secret = self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:
            raise _bad_share(
                mismatch("peer X25519 public key", "a point of large order", "a low-order point")
            ) from None
        key = HKDF(hashes.SHA256(), length=32, salt=transcript, info=HKDF_INFO).derive(secret)
        return KeyedHasher(key)
