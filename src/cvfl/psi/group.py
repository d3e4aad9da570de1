"""Ristretto255 operations for ECDH-PSI: hash-to-group, blinding, point validation.

libsodium (bundled by ``rbcl``, called through ``ctypes``, which releases the GIL during each C
call) does the group arithmetic, so a thread pool spreads batches over every core without
copying the secret scalar into another process.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import rbcl

from cvfl.errors import AlignmentError

POINT_BYTES = 32
_DOMAIN = b"cvfl/psi/hash-to-ristretto255/v1"
_IDENTITY = bytes(POINT_BYTES)


def domain_label(job_id: str) -> bytes:
    """Return the hash-to-group prefix for a job: a fixed tag plus the length-prefixed job id."""
    job = job_id.encode("utf-8")
    return _DOMAIN + struct.pack(">I", len(job)) + job


class Blinder:
    """One party's secret exponent for one run; fresh on every construction, never exported."""

    __slots__ = ("_scalar",)

    def __init__(self) -> None:
        self._scalar = rbcl.crypto_core_ristretto255_scalar_random()

    def __repr__(self) -> str:
        return "Blinder(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a PSI blinder holds a secret scalar and cannot be pickled")

    def hash_and_blind(self, label: bytes, items: Sequence[bytes]) -> bytes:
        """Map canonical ids to the group under ``label`` and raise them to the secret scalar.

        Returns the concatenated 32-byte encodings, in input order.
        """
        out = bytearray()
        scalar = self._scalar
        for item in items:
            digest = hashlib.sha512(label + struct.pack(">I", len(item)) + item).digest()
            point = rbcl.crypto_core_ristretto255_from_hash(digest)
            out += rbcl.crypto_scalarmult_ristretto255(scalar, point)
        return bytes(out)

    def blind_points(self, points: bytes, *, batch: int, what: str) -> bytes:
        """Raise each received point to the secret scalar, validating every one.

        Raises:
            AlignmentError: a point is malformed, not in the group, or the identity; the message
                names the batch and the index within it.
        """
        check_length(points, batch=batch, what=what)
        out = bytearray()
        scalar = self._scalar
        for i in range(0, len(points), POINT_BYTES):
            point = points[i : i + POINT_BYTES]
            try:
                out += rbcl.crypto_scalarmult_ristretto255(scalar, point)
            except RuntimeError:
                raise _bad_point(what, batch, i // POINT_BYTES) from None
        return bytes(out)


def validate_points(points: bytes, *, batch: int, what: str) -> None:
    """Check that every 32-byte slice of ``points`` is a canonical ristretto255 group element.

    Raises:
        AlignmentError: naming the batch and the index of the first bad point.
    """
    check_length(points, batch=batch, what=what)
    for i in range(0, len(points), POINT_BYTES):
        point = points[i : i + POINT_BYTES]
        if point == _IDENTITY or not rbcl.crypto_core_ristretto255_is_valid_point(point):
            raise _bad_point(what, batch, i // POINT_BYTES)


def check_length(points: bytes, *, batch: int, what: str) -> None:
    """Refuse a payload that is not a whole number of points."""
    if len(points) % POINT_BYTES:
        raise AlignmentError(
            f"peer {what} batch {batch}: payload of {len(points)} bytes is not a whole number "
            f"of {POINT_BYTES}-byte points",
            code="psi.bad_point",
        )


def _bad_point(what: str, batch: int, index: int) -> AlignmentError:
    return AlignmentError(
        f"peer {what} batch {batch} item {index}: not a valid ristretto255 group element "
        "(malformed, off-group or identity)",
        code="psi.bad_point",
    )
