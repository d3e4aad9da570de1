"""The sealed-file format, version 1: header layout, key derivation and chunk binding.

Layout (big-endian integers; the written spec is docs/sealing.md)::

    offset  size  field
    0       8     magic            b"CVFLSEAL"
    8       2     version          1
    10      4     chunk_size       plaintext bytes per chunk (MIN_CHUNK_SIZE..MAX_CHUNK_SIZE)
    14      32    file_nonce       random, fresh for every file
    46      1     purpose_len      1..64
    47      n     purpose          ASCII, e.g. "checkpoint"
    ..      1     key_id_len       1..128
    ..      m     key_id           ASCII, non-secret label of the sealing key
    ..      32    header_tag       HMAC-SHA256(mac_key, every header byte before it)
    then chunks: AES-256-GCM(file_key, nonce=index as 12 bytes, aad) ciphertext || 16-byte tag

``file_key || mac_key = HKDF-SHA256(ikm=provider key, salt=file_nonce, info=INFO || prefix)``
where ``prefix`` is every header byte before the tag, so a changed header field yields other keys.
Each chunk's associated data is ``SHA256(header) || index (u64) || last (u8)``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cvfl.errors import SealingError, mismatch

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAGIC = b"CVFLSEAL"
VERSION = 1
NONCE_SIZE = 32
TAG_SIZE = 16
HEADER_TAG_SIZE = 32
MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 64 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 256 * 1024  # a record and its plaintext fit in a core's L2 cache
MIN_KEY_SIZE = 16
MAX_PURPOSE_LEN = 64
MAX_KEY_ID_LEN = 128
INFO = b"cvfl-seal-v1\x00"

_FIXED = struct.Struct(">8sHI32sB")  # magic, version, chunk_size, file_nonce, purpose_len
_AAD = struct.Struct(">32sQB")  # header digest, chunk index, last flag
_PURPOSE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
_KEY_ID_RE = re.compile(r"[\x21-\x7e]+")


class ReadableSource(Protocol):
    """A binary source that can read into a buffer (files opened ``"rb"``, ``io.BytesIO``)."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes."""
        ...

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        """Read into ``buffer``; return the count read."""
        ...


@dataclass(frozen=True)
class SealedHeader:
    """A parsed header; ``prefix`` is every byte before ``tag`` (what the tag authenticates)."""

    version: int
    chunk_size: int
    file_nonce: bytes
    purpose: str
    key_id: str
    prefix: bytes
    tag: bytes

    @property
    def length(self) -> int:
        """Total header length in bytes, tag included."""
        return len(self.prefix) + len(self.tag)

    @property
    def digest(self) -> bytes:
        """SHA-256 of the whole header (tag included), bound into every chunk."""
        return hashlib.sha256(self.prefix + self.tag).digest()


@dataclass(frozen=True)
class FileKeys:
    """Per-file keys derived from the provider's key and the header."""

    file_key: bytes
    mac_key: bytes


def check_purpose(purpose: str) -> str:
    """Validate a purpose string (1-64 ASCII letters, digits and ``._:/-``) and return it."""
    if not (0 < len(purpose) <= MAX_PURPOSE_LEN and _PURPOSE_RE.fullmatch(purpose)):
        raise SealingError(
            mismatch("purpose", f"1-{MAX_PURPOSE_LEN} chars of [A-Za-z0-9._:/-]", repr(purpose)),
            code="sealing.purpose_invalid",
        )
    return purpose


def check_key_id(key_id: str) -> str:
    """Validate a key id (1-128 printable ASCII characters, no spaces) and return it."""
    if not (0 < len(key_id) <= MAX_KEY_ID_LEN and _KEY_ID_RE.fullmatch(key_id)):
        raise SealingError(
            mismatch("key id", f"1-{MAX_KEY_ID_LEN} printable ASCII chars", repr(key_id)),
            code="sealing.key_id_invalid",
        )
    return key_id


def check_chunk_size(chunk_size: int) -> int:
    """Validate a chunk size against the format's bounds and return it."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise SealingError(
            mismatch("chunk size", f"{MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}", chunk_size),
            code="sealing.chunk_size",
        )
    return chunk_size


def encode_prefix(purpose: str, key_id: str, chunk_size: int, file_nonce: bytes) -> bytes:
    """Encode every header field before the tag."""
    if len(file_nonce) != NONCE_SIZE:
        raise SealingError(
            mismatch("file nonce length", NONCE_SIZE, len(file_nonce)), code="sealing.nonce_invalid"
        )
    p = check_purpose(purpose).encode("ascii")
    k = check_key_id(key_id).encode("ascii")
    fixed = _FIXED.pack(MAGIC, VERSION, check_chunk_size(chunk_size), file_nonce, len(p))
    return fixed + p + bytes([len(k)]) + k


def derive_keys(master: bytes, prefix: bytes, file_nonce: bytes) -> FileKeys:
    """Derive the per-file AES-256-GCM key and header MAC key (HKDF-SHA256)."""
    if len(master) < MIN_KEY_SIZE:
        raise SealingError(
            mismatch("sealing key length", f">= {MIN_KEY_SIZE} bytes", f"{len(master)} bytes"),
            code="sealing.key_invalid",
        )
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=file_nonce, info=INFO + prefix).derive(
        master
    )
    return FileKeys(file_key=okm[:32], mac_key=okm[32:])


def header_tag(keys: FileKeys, prefix: bytes) -> bytes:
    """Compute the header's authentication tag."""
    return hmac.new(keys.mac_key, prefix, hashlib.sha256).digest()


def tag_matches(keys: FileKeys, header: SealedHeader) -> bool:
    """Check the header's tag in constant time."""
    return hmac.compare_digest(header_tag(keys, header.prefix), header.tag)


def chunk_nonce(index: int) -> bytes:
    """The 12-byte GCM nonce of chunk ``index`` (unique per file key)."""
    return index.to_bytes(12, "big")


def chunk_aad(header_digest: bytes, index: int, last: bool) -> bytes:
    """The associated data of chunk ``index``: header digest, index and last-chunk flag."""
    return _AAD.pack(header_digest, index, 1 if last else 0)


def _read_exact(source: ReadableSource, size: int, name: str, what: str) -> bytes:
    data = b""
    while len(data) < size and (more := source.read(size - len(data))):
        data += more  # raw streams and pipes may return short reads
    if len(data) != size:
        raise SealingError(
            f"{name}: header truncated: " + mismatch(what, f"{size} bytes", f"{len(data)} bytes"),
            code="sealing.header_truncated",
        )
    return data


def read_header(source: ReadableSource, name: str) -> SealedHeader:
    """Read and parse a header from ``source`` (not yet authenticated: see ``tag_matches``)."""
    fixed = _read_exact(source, _FIXED.size, name, "fixed header")
    magic, version, chunk_size, file_nonce, purpose_len = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise SealingError(
            f"{name}: not a sealed file: " + mismatch("magic", MAGIC.hex(), magic.hex()),
            code="sealing.not_sealed",
        )
    if version != VERSION:
        raise SealingError(
            f"{name}: " + mismatch("version", VERSION, version), code="sealing.version"
        )
    raw_purpose = _read_exact(source, purpose_len, name, "purpose")
    raw_key_len = _read_exact(source, 1, name, "key id length")
    raw_key_id = _read_exact(source, raw_key_len[0], name, "key id")
    tag = _read_exact(source, HEADER_TAG_SIZE, name, "header tag")
    try:
        purpose = check_purpose(raw_purpose.decode("ascii"))
        key_id = check_key_id(raw_key_id.decode("ascii"))
        check_chunk_size(chunk_size)
    except (UnicodeDecodeError, SealingError) as exc:
        raise SealingError(
            f"{name}: malformed header: {exc}", code="sealing.header_invalid"
        ) from exc
    prefix = fixed + raw_purpose + raw_key_len + raw_key_id
    return SealedHeader(version, chunk_size, file_nonce, purpose, key_id, prefix, tag)


def plaintext_length(body_size: int, chunk_size: int) -> int | None:
    """Plaintext size implied by ``body_size`` bytes of chunks, or None if no layout fits."""
    record = chunk_size + TAG_SIZE
    full, rest = divmod(body_size, record)
    if rest == 0:
        return None if full == 0 else full * chunk_size
    if rest < TAG_SIZE:
        return None
    return full * chunk_size + rest - TAG_SIZE
