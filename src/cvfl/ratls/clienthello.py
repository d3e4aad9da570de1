"""Read the server name (SNI) from the first bytes of a TLS connection, without trusting them.

The one-port front door (:mod:`cvfl.ratls.front`) routes each connection by the server name the
client put in its ClientHello: the attest service and the pinned mutual-TLS session service live
behind the same port. This parser looks at attacker-controlled bytes, so it is bounded (at most
:data:`MAX_HELLO_BYTES` are ever needed) and total: every input gives a :class:`Scan`, never an
exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

RECORD_HEADER = 5
HANDSHAKE_HEADER = 4
CONTENT_HANDSHAKE = 0x16
HANDSHAKE_CLIENT_HELLO = 0x01
EXT_SERVER_NAME = 0x0000
NAME_TYPE_HOST = 0x00
MAX_RECORD = 16384 + 2048  # TLSPlaintext limit plus the slack TLS 1.2 allows
MAX_HELLO_BYTES = 32 * 1024  # a ClientHello larger than this is refused, whatever it holds
MAX_NAME = 255


class Verdict(Enum):
    """What the bytes seen so far say."""

    NEED_MORE = "need more bytes"
    NOT_TLS = "not a TLS ClientHello"
    HELLO = "complete ClientHello"


@dataclass(frozen=True)
class Scan:
    """The outcome of :func:`scan`: a verdict and, for a complete hello, its server name."""

    verdict: Verdict
    server_name: str | None = None
    reason: str = ""


def _more() -> Scan:
    return Scan(Verdict.NEED_MORE)


def _bad(reason: str) -> Scan:
    return Scan(Verdict.NOT_TLS, reason=reason)


def _record(data: bytes, pos: int) -> bytes | Scan:
    """The payload of the handshake record at ``pos`` (or why there is none yet)."""
    if len(data) - pos < RECORD_HEADER:
        return _more()
    if data[pos] != CONTENT_HANDSHAKE or data[pos + 1] != 0x03:
        return _bad(f"record type 0x{data[pos]:02x} version 0x{data[pos + 1]:02x}")
    length = int.from_bytes(data[pos + 3 : pos + 5], "big")
    if length == 0 or length > MAX_RECORD:
        return _bad(f"record length {length}")
    if len(data) - pos - RECORD_HEADER < length:
        return _more()
    return data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]


def _handshake_bytes(data: bytes) -> bytes | Scan:
    """Concatenate the payloads of the leading handshake records (a hello may span several)."""
    out = bytearray()
    pos = 0
    while pos <= MAX_HELLO_BYTES:
        if len(out) >= HANDSHAKE_HEADER:
            needed = HANDSHAKE_HEADER + int.from_bytes(out[1:4], "big")
            if needed > MAX_HELLO_BYTES:
                return _bad(f"ClientHello of {needed} bytes (at most {MAX_HELLO_BYTES})")
            if len(out) >= needed:
                return bytes(out[:needed])
        payload = _record(data, pos)
        if isinstance(payload, Scan):
            return payload
        out += payload
        pos += RECORD_HEADER + len(payload)
    return _bad(f"ClientHello larger than {MAX_HELLO_BYTES} bytes")


class _Reader:
    """A cursor over a byte string whose reads fail softly (``None``) past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes | None:
        if n < 0 or self.pos + n > len(self.data):
            return None
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def number(self, width: int) -> int | None:
        raw = self.take(width)
        return None if raw is None else int.from_bytes(raw, "big")

    def vector(self, width: int) -> bytes | None:
        length = self.number(width)
        return None if length is None else self.take(length)


def _extensions(body: bytes) -> bytes | None:
    """Skip the fixed part of a ClientHello body; return its extensions block (or b"")."""
    reader = _Reader(body)
    if reader.take(2 + 32) is None:  # legacy_version, random
        return None
    for width in (1, 2, 1):  # session id, cipher suites, compression methods
        if reader.vector(width) is None:
            return None
    if reader.pos == len(body):
        return b""  # no extensions at all (legal before TLS 1.3)
    return reader.vector(2)


def _server_name(extensions: bytes) -> str | Scan | None:
    reader = _Reader(extensions)
    while reader.pos < len(extensions):
        kind = reader.number(2)
        value = reader.vector(2)
        if kind is None or value is None:
            return _bad("truncated extension")
        if kind == EXT_SERVER_NAME:
            return _host_name(value)
    return None


def _host_name(value: bytes) -> str | Scan | None:
    names = _Reader(value).vector(2)
    if names is None:
        return _bad("malformed server_name extension")
    reader = _Reader(names)
    while reader.pos < len(names):
        kind = reader.number(1)
        name = reader.vector(2)
        if kind is None or name is None:
            return _bad("malformed server_name list")
        if kind == NAME_TYPE_HOST:
            if not 0 < len(name) <= MAX_NAME or not name.isascii():
                return _bad("server name not 1..255 ASCII bytes")
            return name.decode("ascii").lower()
    return None


def scan(data: bytes) -> Scan:
    """Classify the first bytes of a connection and extract the ClientHello's host name.

    Returns:
        ``NEED_MORE`` while the hello is incomplete, ``NOT_TLS`` for anything that is not a
        well-formed TLS ClientHello, else ``HELLO`` with the host name (None without SNI).
    """
    handshake = _handshake_bytes(data)
    if isinstance(handshake, Scan):
        return handshake
    if handshake[0] != HANDSHAKE_CLIENT_HELLO:
        return _bad(f"handshake type {handshake[0]}")
    extensions = _extensions(handshake[HANDSHAKE_HEADER:])
    if extensions is None:
        return _bad("truncated ClientHello")
    name = _server_name(extensions)
    if isinstance(name, Scan):
        return name
    return Scan(Verdict.HELLO, server_name=name)
