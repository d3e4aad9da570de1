"""The X25519 group: Curve25519's prime-order subgroup, on Montgomery u-coordinates.

Hash-to-group: ``SHA-512(label ‖ len ‖ canonical id)`` → libsodium's
``crypto_core_ed25519_from_hash`` (one Elligator 2 map, then cofactor clearing: an Edwards point
in the prime-order subgroup) → the Montgomery u-coordinate ``(1 + y) / (1 - y)`` (one inversion
per batch). Blinding is X25519 with a fresh random 32-byte private key; libsodium clamps it to a
multiple of 8, so small-order components vanish, and ``X25519(b, X25519(a, u)) ==
X25519(a, X25519(b, u))``. Received blinded points must be canonical (u < p, top bit clear), on
the curve rather than its twist (a batched Legendre test), and not of small order (X25519 would
give zero). Answers are only compared, never multiplied: they need the canonical check only
(and are refused when zero, which no honest answer is).
"""

from __future__ import annotations

import ctypes
import hashlib
import secrets
import struct
from collections.abc import Sequence

from cvfl.psi.ecdh.curve25519 import (
    curve_rhs,
    edwards_to_montgomery,
    first_non_square,
    non_canonical,
    zero_points,
)
from cvfl.psi.ecdh.points import POINT_BYTES, bad_point, check_length, internal_error, lib

_NON_CANONICAL = "not a canonical Curve25519 u-coordinate (top bit set, or u >= 2^255 - 19)"
_SMALL_ORDER = "a point of small order (X25519 gives zero)"
_TWIST = "not on Curve25519 (u^3 + 486662 u^2 + u is not a square: a point of its twist)"


class X25519:
    """ECDH-PSI over Curve25519's prime-order subgroup with X25519 blinding."""

    name = "x25519"
    domain = b"cvfl/psi/hash-to-curve25519/v1"

    def new_secret(self) -> bytes:
        """Return a fresh random X25519 private key (libsodium clamps it when used)."""
        return secrets.token_bytes(POINT_BYTES)

    def hash_to_group(self, label: bytes, items: Sequence[bytes]) -> list[bytes]:
        """Map canonical ids under ``label`` to u-coordinates of prime-order points (unblinded)."""
        encoding = ctypes.create_string_buffer(POINT_BYTES)
        from_hash = lib.crypto_core_ed25519_from_hash
        sha512, pack = hashlib.sha512, struct.pack
        edwards = []
        for item in items:
            from_hash(encoding, sha512(label + pack(">I", len(item)) + item).digest())
            edwards.append(encoding.raw)
        try:
            us = edwards_to_montgomery(edwards)
        except ValueError:  # pragma: no cover - from_hash gives the identity with prob. ~2^-252
            raise internal_error("hash-to-group produced the identity") from None
        return [u.to_bytes(POINT_BYTES, "little") for u in us]

    def hash_and_blind(self, secret: bytes, label: bytes, items: Sequence[bytes]) -> bytes:
        """Map canonical ids to the group under ``label`` and apply X25519 with ``secret``."""
        out, bad = multiply(secret, self.hash_to_group(label, items))
        if bad is not None:  # pragma: no cover - prime-order points never give zero
            raise internal_error("X25519 of a hashed point gave zero")
        return out

    def blind_points(self, secret: bytes, points: bytes, *, batch: int, what: str) -> bytes:
        """Apply X25519 with ``secret`` to each received u-coordinate, validating every one."""
        out, index = multiply(secret, self.validate(points, batch=batch, what=what))
        if index is not None:
            raise bad_point(what, batch, index, _SMALL_ORDER)
        return out

    def validate(self, points: bytes, *, batch: int, what: str) -> list[bytes]:
        """Check that received points are canonical and on the curve; return them one by one.

        Small order is left to the multiplication (X25519 gives zero), except u = 0.
        """
        check_length(points, batch=batch, what=what)
        bad = non_canonical(points)
        if len(bad):
            raise bad_point(what, batch, int(bad[0]), _NON_CANONICAL)
        encoded = [points[i : i + POINT_BYTES] for i in range(0, len(points), POINT_BYTES)]
        us = [int.from_bytes(e, "little") for e in encoded]
        index = first_non_square([curve_rhs(u) for u in us])
        if index is not None:
            raise bad_point(what, batch, index, _SMALL_ORDER if us[index] == 0 else _TWIST)
        return encoded

    def check_answers(self, points: bytes, *, batch: int, what: str) -> None:
        """Check that every answer is a canonical, non-zero u-coordinate (compared, not used)."""
        check_length(points, batch=batch, what=what)
        for bad, why in ((non_canonical(points), _NON_CANONICAL), (zero_points(points), "zero")):
            if len(bad):
                raise bad_point(what, batch, int(bad[0]), why)


def multiply(secret: bytes, encoded: Sequence[bytes]) -> tuple[bytes, int | None]:
    """X25519 of every u under ``secret``; the index of the first all-zero result, if any."""
    out = bytearray()
    result = ctypes.create_string_buffer(POINT_BYTES)
    mult = lib.crypto_scalarmult_curve25519
    for i, u in enumerate(encoded):
        if mult(result, secret, u) != 0:  # libsodium: -1 when the result is all zero
            return b"", i
        out += result.raw
    return bytes(out), None
