"""The ristretto255 group (libsodium): hash-to-group, blinding, validation of received points."""

from __future__ import annotations

import ctypes
import hashlib
import struct
from collections.abc import Sequence

import rbcl

from cvfl.psi.ecdh.points import POINT_BYTES, bad_point, check_length, internal_error, lib

_IDENTITY = bytes(POINT_BYTES)
_WHY = "not a valid ristretto255 group element (malformed, off-group or identity)"


class Ristretto255:
    """ECDH-PSI over ristretto255: ``H(x)^a`` with a random scalar ``a`` mod the group order."""

    name = "ristretto255"
    domain = b"cvfl/psi/hash-to-ristretto255/v1"

    def new_secret(self) -> bytes:
        """Return a fresh random non-zero scalar (32 bytes, reduced mod the group order)."""
        return bytes(rbcl.crypto_core_ristretto255_scalar_random())

    def hash_and_blind(self, secret: bytes, label: bytes, items: Sequence[bytes]) -> bytes:
        """Map canonical ids to the group under ``label`` and raise them to ``secret``."""
        out = bytearray()
        point = ctypes.create_string_buffer(POINT_BYTES)
        blinded = ctypes.create_string_buffer(POINT_BYTES)
        from_hash, mult = (
            lib.crypto_core_ristretto255_from_hash,
            lib.crypto_scalarmult_ristretto255,
        )
        sha512, pack = hashlib.sha512, struct.pack
        for item in items:
            from_hash(point, sha512(label + pack(">I", len(item)) + item).digest())
            if mult(blinded, secret, point) != 0:  # pragma: no cover - from_hash never gives 0
                raise internal_error("hash-to-group produced the identity")
            out += blinded.raw
        return bytes(out)

    def blind_points(self, secret: bytes, points: bytes, *, batch: int, what: str) -> bytes:
        """Raise each received point to ``secret``; libsodium validates every one."""
        check_length(points, batch=batch, what=what)
        out = bytearray()
        blinded = ctypes.create_string_buffer(POINT_BYTES)
        mult = lib.crypto_scalarmult_ristretto255
        for i in range(0, len(points), POINT_BYTES):
            # libsodium refuses non-canonical or non-group encodings and an identity result
            if mult(blinded, secret, points[i : i + POINT_BYTES]) != 0:
                raise bad_point(what, batch, i // POINT_BYTES, _WHY)
            out += blinded.raw
        return bytes(out)

    def check_answers(self, points: bytes, *, batch: int, what: str) -> None:
        """Check that every point is a canonical ristretto255 element other than the identity."""
        check_length(points, batch=batch, what=what)
        valid = lib.crypto_core_ristretto255_is_valid_point
        for i in range(0, len(points), POINT_BYTES):
            point = points[i : i + POINT_BYTES]
            if point == _IDENTITY or valid(point) != 1:
                raise bad_point(what, batch, i // POINT_BYTES, _WHY)
