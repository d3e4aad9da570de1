"""HMAC-SHA256 over many short items, the keyed hash of fast mode and of the aligned order.

Fast mode hashes ids under the session key (:mod:`cvfl.psi.fast.key`); both modes sort their
rows of the intersection by a keyed hash under the order key (:mod:`cvfl.psi.order`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

TAG_BYTES = 32
_BLOCK = 64  # SHA-256 block size: the HMAC pads


class KeyedHasher:
    """HMAC-SHA256 under the session key, with the key's inner and outer pads absorbed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        padded = key.ljust(_BLOCK, b"\0") if len(key) <= _BLOCK else b""
        if not padded:
            raise ValueError("HMAC keys longer than one block are not used here")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def __repr__(self) -> str:
        return "KeyedHasher(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a PSI keyed hasher holds a secret key and cannot be pickled")

    def tags(self, items: Sequence[bytes]) -> bytes:
        """Return ``HMAC-SHA256(key, item)`` of every item, concatenated (32 bytes each)."""
        inner, outer = self._inner.copy, self._outer.copy
        out: list[bytes] = []
        append = out.append
        for item in items:
            i = inner()
            i.update(item)
            o = outer()
            o.update(i.digest())
            append(o.digest())
        return b"".join(out)
