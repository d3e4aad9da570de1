"""Ristretto255 operations for ECDH-PSI: hash-to-group, blinding, point validation.

libsodium (bundled by ``rbcl``) does the group arithmetic. The hot loops call its ``ctypes``
handle (``rbcl._sodium``, re-exported by rbcl) directly with reused output buffers: rbcl's
per-call wrappers cost about 12 us of Python under the GIL, which halved the gain from a second
thread; a bare ``ctypes`` call releases the GIL for the whole C computation, so a thread pool
spreads batches over every core without copying the secret scalar into another process.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import struct
import sys
from collections.abc import Sequence

import rbcl

from cvfl.errors import AlignmentError

POINT_BYTES = 32
_DOMAIN = b"cvfl/psi/hash-to-ristretto255/v1"
_IDENTITY = bytes(POINT_BYTES)
_lib = rbcl._sodium


def _remove_rbcl_copy() -> None:
    """Delete the copy of libsodium that rbcl writes to the temp folder on every import.

    rbcl never removes it (a few MB per process); once loaded, the file is no longer needed.
    """
    path = getattr(sys.modules.get("rbcl._sodium"), "lib_path", None)
    if isinstance(path, str) and os.path.basename(path).startswith("tmp"):
        with contextlib.suppress(OSError):
            os.unlink(path)


_remove_rbcl_copy()


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
        point = ctypes.create_string_buffer(POINT_BYTES)
        blinded = ctypes.create_string_buffer(POINT_BYTES)
        from_hash, mult = (
            _lib.crypto_core_ristretto255_from_hash,
            _lib.crypto_scalarmult_ristretto255,
        )
        sha512, pack = hashlib.sha512, struct.pack
        for item in items:
            from_hash(point, sha512(label + pack(">I", len(item)) + item).digest())
            if mult(blinded, scalar, point) != 0:  # pragma: no cover - from_hash never gives 0
                raise AlignmentError("hash-to-group produced the identity", code="psi.internal")
            out += blinded.raw
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
        blinded = ctypes.create_string_buffer(POINT_BYTES)
        mult = _lib.crypto_scalarmult_ristretto255
        for i in range(0, len(points), POINT_BYTES):
            # libsodium refuses non-canonical or non-group encodings and an identity result
            if mult(blinded, scalar, points[i : i + POINT_BYTES]) != 0:
                raise _bad_point(what, batch, i // POINT_BYTES)
            out += blinded.raw
        return bytes(out)


def validate_points(points: bytes, *, batch: int, what: str) -> None:
    """Check that every 32-byte slice of ``points`` is a canonical ristretto255 group element.

    Raises:
        AlignmentError: naming the batch and the index of the first bad point.
    """
    check_length(points, batch=batch, what=what)
    valid = _lib.crypto_core_ristretto255_is_valid_point
    for i in range(0, len(points), POINT_BYTES):
        point = points[i : i + POINT_BYTES]
        if point == _IDENTITY or valid(point) != 1:
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
