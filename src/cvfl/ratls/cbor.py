"""A strict decoder for the small CBOR subset that RA-TLS evidence uses.

TCG DICE tagged evidence (docs/attestation-channel.md, Certificates) needs unsigned integers,
byte strings, text strings, definite-length arrays and maps, and tags. A general CBOR library
would also build dates, big numbers, regular expressions and shared references from
attacker-chosen bytes, so certificates from the network are decoded here instead: definite
lengths only, bounded depth and sizes, no floats or simple values, and the whole input must be
consumed. Encoding uses ``cbor2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from cvfl.errors import AttestationError, mismatch

MAX_DEPTH = 8
MAX_ITEMS = 64

_MAJOR_UINT, _MAJOR_BYTES, _MAJOR_TEXT, _MAJOR_ARRAY, _MAJOR_MAP, _MAJOR_TAG = 0, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Tagged:
    """A CBOR tag (major type 6) around one item."""

    tag: int
    item: CborValue


CborValue: TypeAlias = "int | bytes | str | list[CborValue] | dict[CborValue, CborValue] | Tagged"


def _refuse(message: str) -> AttestationError:
    return AttestationError(f"malformed CBOR evidence: {message}", code="ratls.cbor")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise _refuse(mismatch("length", f"{n} more bytes", len(self.data) - self.pos))
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def head(self) -> tuple[int, int]:
        first = self.take(1)[0]
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info
        if info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            return major, int.from_bytes(self.take(size), "big")
        raise _refuse(mismatch("additional info", "a definite length (0..27)", info))

    def item(self, depth: int) -> CborValue:
        if depth > MAX_DEPTH:
            raise _refuse(mismatch("nesting depth", f"at most {MAX_DEPTH}", depth))
        major, arg = self.head()
        if major == _MAJOR_UINT:
            return arg
        if major == _MAJOR_BYTES:
            return self.take(arg)
        if major == _MAJOR_TEXT:
            try:
                return self.take(arg).decode("utf-8")
            except UnicodeDecodeError:
                raise _refuse(mismatch("text string", "UTF-8", "invalid bytes")) from None
        if major == _MAJOR_TAG:
            return Tagged(arg, self.item(depth + 1))
        if major in (_MAJOR_ARRAY, _MAJOR_MAP):
            return self._container(major, arg, depth)
        raise _refuse(mismatch("major type", "0, 2, 3, 4, 5 or 6", major))

    def _container(self, major: int, count: int, depth: int) -> CborValue:
        if count > MAX_ITEMS:
            raise _refuse(mismatch("container size", f"at most {MAX_ITEMS}", count))
        if major == _MAJOR_ARRAY:
            return [self.item(depth + 1) for _ in range(count)]
        out: dict[CborValue, CborValue] = {}
        for _ in range(count):
            key = self.item(depth + 1)
            if not isinstance(key, int | str | bytes):
                raise _refuse(mismatch("map key type", "integer or string", type(key).__name__))
            if key in out:
                raise _refuse(mismatch("map keys", "unique", f"duplicate {key!r}"))
            out[key] = self.item(depth + 1)
        return out


def decode(data: bytes) -> CborValue:
    """Decode exactly one CBOR item that fills ``data``.

    Raises:
        AttestationError: malformed, unsupported (indefinite lengths, floats, negative integers,
            simple values), too deep, or followed by trailing bytes.
    """
    reader = _Reader(bytes(data))
    value = reader.item(0)
    if reader.pos != len(reader.data):
        raise _refuse(mismatch("trailing bytes", 0, len(reader.data) - reader.pos))
    return value
