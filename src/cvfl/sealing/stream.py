"""Streaming sealing and unsealing over binary file objects, one chunk in memory at a time."""

from __future__ import annotations

import io
import secrets
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cvfl.errors import SealingError, mismatch
from cvfl.sealing.format import (
    DEFAULT_CHUNK_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    VERSION,
    FileKeys,
    SealedHeader,
    chunk_aad,
    chunk_nonce,
    derive_keys,
    encode_prefix,
    header_tag,
    tag_matches,
)
from cvfl.sealing.keys import KeyProvider, key_fingerprint_of

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


def authenticate(header: SealedHeader, purpose: str, keys: KeyProvider, name: str) -> FileKeys:
    """Check the header's tag under ``keys`` and its purpose; return the per-file keys."""
    file_keys = derive_keys(keys.key(), header.prefix, header.file_nonce)
    if not tag_matches(file_keys, header):
        if key_fingerprint_of(header.key_id) != key_fingerprint_of(keys.key_id):
            raise SealingError(
                f"{name}: wrong key: " + mismatch("key id", header.key_id, keys.key_id),
                code="sealing.wrong_key",
            )
        raise SealingError(
            f"{name}: header failed authentication (tampered or corrupted)",
            code="sealing.header_tampered",
        )
    if header.purpose != purpose:
        raise SealingError(
            f"{name}: " + mismatch("purpose", purpose, header.purpose),
            code="sealing.purpose_mismatch",
        )
    return file_keys


class ChunkOpener:
    """Decrypts and verifies chunk records of one file."""

    def __init__(self, header: SealedHeader, file_keys: FileKeys, name: str) -> None:
        self._aead = AESGCM(file_keys.file_key)
        self._digest = header.digest
        self.name = name

    def open_into(self, index: int, record: memoryview, last: bool, out: memoryview) -> int:
        """Decrypt ``record`` into ``out`` (wiped on failure); return the plaintext length."""
        n = len(record) - TAG_SIZE
        target = out[:n]
        try:
            self._aead.decrypt_into(
                chunk_nonce(index), record, chunk_aad(self._digest, index, last), target
            )
        except InvalidTag:
            target[:] = bytes(n)  # decrypt_into leaves unverified plaintext behind: wipe it
            state = "the final chunk (file cut short or extended?)" if last else "a middle chunk"
            raise SealingError(
                f"{self.name}: chunk {index} failed authentication as {state}: tampered, "
                "reordered, truncated, extended or taken from another file",
                code="sealing.chunk_tampered",
            ) from None
        return n


class SealedWriter(io.RawIOBase):
    """A writable stream that seals everything written into ``sink``.

    Call :meth:`finish` once all data is written: it seals the final chunk. A sink whose writer
    was never finished has no final chunk and every reader refuses it as truncated.
    """

    def __init__(
        self,
        sink: BinaryIO,
        *,
        purpose: str,
        keys: KeyProvider,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        name: str = "<stream>",
    ) -> None:
        super().__init__()
        nonce = secrets.token_bytes(NONCE_SIZE)
        prefix = encode_prefix(purpose, keys.key_id, chunk_size, nonce)
        file_keys = derive_keys(keys.key(), prefix, nonce)
        tag = header_tag(file_keys, prefix)
        self.header = SealedHeader(VERSION, chunk_size, nonce, purpose, keys.key_id, prefix, tag)
        self._digest = self.header.digest
        self._aead = AESGCM(file_keys.file_key)
        self._sink = sink
        self._chunk = chunk_size
        self._pending = memoryview(bytearray(chunk_size))
        self._fill = 0
        self._out = memoryview(bytearray(chunk_size + TAG_SIZE))
        self._index = 0
        self._finished = False
        self.name = name
        self._sink_write(prefix + tag)

    def writable(self) -> bool:
        """Sealed writers are writable."""
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        """Seal ``data`` (any bytes-like object); return its length."""
        if self._finished or self.closed:
            raise SealingError(f"{self.name}: write after finish", code="sealing.closed")
        view = memoryview(data).cast("B")
        total, pos, size = len(view), 0, self._chunk
        while pos < total:
            if self._fill == size:
                self._emit(self._pending, last=False)
                self._fill = 0
            if self._fill == 0 and total - pos > size:
                self._emit(view[pos : pos + size], last=False)  # more follows: no copy needed
                pos += size
                continue
            take = min(size - self._fill, total - pos)
            self._pending[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
        return total

    def finish(self) -> None:
        """Seal the final chunk (possibly empty) and refuse further writes."""
        if self._finished:
            return
        self._emit(self._pending[: self._fill], last=True)
        self._finished = True
        self._pending[:] = bytes(self._chunk)

    def _emit(self, data: memoryview, *, last: bool) -> None:
        out = self._out[: len(data) + TAG_SIZE]
        aad = chunk_aad(self._digest, self._index, last)
        self._aead.encrypt_into(chunk_nonce(self._index), data, aad, out)
        self._sink_write(out)
        self._index += 1

    def _sink_write(self, data: ReadableBuffer) -> None:
        try:
            self._sink.write(data)
        except OSError as exc:
            raise SealingError(
                f"{self.name}: cannot write: {exc.strerror or exc}", code="sealing.io"
            ) from exc
