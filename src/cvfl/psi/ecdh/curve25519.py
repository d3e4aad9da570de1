"""Field arithmetic mod p = 2^255 - 19 for the X25519 group, batched over whole PSI batches.

Python integers do the few operations per item that libsodium does not expose: the Edwards to
Montgomery map ``u = (1 + y) / (1 - y)`` with one inversion per batch (Montgomery's trick), and
the check that received u-coordinates lie on Curve25519 rather than its twist, with a batched
Legendre-symbol test over random subsets (see :func:`first_non_square`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

P = 2**255 - 19
A = 486662
HALF = (P - 1) // 2
_Y_MASK = (1 << 255) - 1
_GROUP_BITS = 8
_GROUPS = 5  # 5 groups of 8 random bits: 40 independent random subsets per batch
_ALL = 1 << _GROUP_BITS


def batch_inverse(values: Sequence[int], numerator: int = 1) -> list[int]:
    """Return ``[numerator / v mod p for v in values]`` with one modular inversion.

    Montgomery's trick: prefix products, one inversion of the last, and a walk back (three
    multiplications per value).

    Raises:
        ValueError: a value is 0 mod p.
    """
    prefix: list[int] = []
    acc = 1
    for v in values:
        acc = acc * v % P
        prefix.append(acc)
    if not values:
        return []
    inv = numerator * pow(acc, -1, P) % P  # pow raises ValueError when the product is 0
    out = [0] * len(values)
    for i in range(len(values) - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % P
        inv = inv * values[i] % P
    out[0] = inv
    return out


def edwards_to_montgomery(encodings: Sequence[bytes]) -> list[int]:
    """Map Edwards25519 point encodings to Montgomery u-coordinates ``(1 + y) / (1 - y)``.

    Computed as ``2 / (1 - y) - 1`` (the same value), so the batched inversion yields u less
    one directly. The sign bit of x (the top bit) is ignored: u does not depend on it.

    Raises:
        ValueError: a point has y = 1 (the identity, which has no u-coordinate).
    """
    mask = _Y_MASK
    twice_inverses = batch_inverse(
        [(1 - (int.from_bytes(e, "little") & mask)) % P for e in encodings], 2
    )
    return [(t - 1) % P for t in twice_inverses]


def curve_rhs(u: int) -> int:
    """Return ``u^3 + A u^2 + u mod p``: a square exactly when u is on Curve25519, not its twist."""
    return u * ((u + A) * u + 1) % P


def is_square(x: int) -> bool:
    """Euler's criterion: whether ``x`` is a non-zero square mod p."""
    return pow(x, HALF, P) == 1


def first_non_square(values: Sequence[int]) -> int | None:
    """Return the index of the first value that is not a non-zero square mod p, else None.

    One Legendre symbol per value would cost a 255-bit exponentiation each. The symbol is
    multiplicative, so this tests 40 products instead: each value gets 40 secret random bits
    (from ``os.urandom``), and the j-th product multiplies the values whose bit j is set. If any
    value is a non-square, each product is a non-square with probability 1/2, independently, so
    all 40 look square with probability 2^-40. The products are formed with buckets: 5 groups of
    8 bits, each value multiplied into one of 256 buckets per group (5 multiplications per
    value), and each product is that of the 128 buckets with that bit set (:func:`_bit_products`).
    Only when a product fails are the values tested one by one, to name the first bad one. A zero
    value is refused at once (it would make every product zero). Values must be reduced mod p.
    """
    if 0 in values:
        zero = list(values).index(0)
        before = first_non_square(values[:zero])
        return zero if before is None else before
    if _products_all_square(values):
        return None
    for i, v in enumerate(values):
        if not is_square(v):
            return i
    raise AssertionError("a product of squares was a non-square")  # pragma: no cover


def _products_all_square(values: Sequence[int]) -> bool:
    picks = os.urandom(_GROUPS * len(values))
    buckets = [[1] * _ALL for _ in range(_GROUPS)]
    b0, b1, b2, b3, b4 = buckets
    rows = zip(values, *(picks[g::_GROUPS] for g in range(_GROUPS)), strict=True)
    for v, k0, k1, k2, k3, k4 in rows:
        b0[k0] = b0[k0] * v % P
        b1[k1] = b1[k1] * v % P
        b2[k2] = b2[k2] * v % P
        b3[k3] = b3[k3] * v % P
        b4[k4] = b4[k4] * v % P
    return all(is_square(t) for group in buckets for t in _bit_products(group))


def _bit_products(buckets: list[int]) -> list[int]:
    """For each bit j of the bucket index, the product of the buckets whose index has bit j set.

    Folds the buckets in half per bit (bucket k with k + 1, k even): about 2 * 256
    multiplications per group instead of 8 * 128.
    """
    products = []
    level = buckets
    while len(level) > 1:
        odd = level[1::2]
        product = 1
        for v in odd:
            product = product * v % P
        products.append(product)
        level = [a * b % P for a, b in zip(level[0::2], odd, strict=True)]
    return products


def non_canonical(points: bytes) -> np.ndarray:
    """Indices of 32-byte little-endian u-coordinates with the top bit set or u >= p."""
    rows = np.frombuffer(points, dtype=np.uint8).reshape(-1, 32)
    top = rows[:, 31] >= 0x80
    at_least_p = (rows[:, 31] == 0x7F) & (rows[:, 1:31] == 0xFF).all(axis=1) & (rows[:, 0] >= 0xED)
    return np.flatnonzero(top | at_least_p)


def zero_points(points: bytes) -> np.ndarray:
    """Indices of all-zero 32-byte encodings."""
    rows = np.frombuffer(points, dtype=np.uint8).reshape(-1, 32)
    return np.flatnonzero(~rows.any(axis=1))
