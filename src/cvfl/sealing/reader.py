"""A readable stream over a sealed file that verifies chunk by chunk (bounded memory)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from cvfl.errors import SealingError
from cvfl.sealing.format import ReadableSource, read_header
from cvfl.sealing.keys import KeyProvider
from cvfl.sealing.records import iter_records
from cvfl.sealing.stream import ChunkOpener, authenticate

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class SealedReader(io.RawIOBase):
    """Readable plaintext of a sealed source; only verified chunks are ever returned.

    The header is read and authenticated on construction (wrong key, tampered header and wrong
    purpose fail here). Each ``read`` then decrypts as many chunks as it needs; a chunk that does
    not verify raises :class:`SealingError`, and so does every later read. Reads return the full
    requested size unless the end of the plaintext is reached.
    """

    def __init__(
        self, source: ReadableSource, *, purpose: str, keys: KeyProvider, name: str = "<stream>"
    ) -> None:
        super().__init__()
        self.name = name
        self.header = read_header(source, name)
        self._opener = ChunkOpener(
            self.header, authenticate(self.header, purpose, keys, name), name
        )
        self._records = iter_records(source, self.header.chunk_size, name)
        self._plain = memoryview(bytearray(self.header.chunk_size))
        self._pos = 0
        self._len = 0
        self._eof = False
        self._error: SealingError | None = None

    def readable(self) -> bool:
        """Sealed readers are readable."""
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Fill ``buffer`` with verified plaintext; return the count (0 at the end)."""
        out = memoryview(buffer).cast("B")
        got = 0
        while got < len(out):
            if self._pos == self._len:
                if self._eof:
                    break
                self._load_next()
                continue
            take = min(len(out) - got, self._len - self._pos)
            out[got : got + take] = self._plain[self._pos : self._pos + take]
            self._pos += take
            got += take
        return got

    def readall(self) -> bytes:
        """Read and verify everything that is left; return it."""
        parts = [bytes(self._plain[self._pos : self._len])]
        self._pos = self._len
        while not self._eof:
            self._load_next()
            parts.append(bytes(self._plain[: self._len]))
            self._pos = self._len
        return b"".join(parts)

    def verify_rest(self) -> None:
        """Verify the remaining chunks without returning them (ensures the whole file is intact)."""
        while not self._eof:
            self._load_next()
        self._pos = self._len

    def close(self) -> None:
        """Close the reader and wipe its plaintext buffer."""
        if not self.closed:
            self._plain[:] = bytes(len(self._plain))
            self._records.close()
        super().close()

    def _load_next(self) -> None:
        if self._error is not None:
            raise self._error
        if self.closed:
            raise SealingError(f"{self.name}: read after close", code="sealing.closed")
        try:
            index, record, last = next(self._records)
            self._len = self._opener.open_into(index, record, last, self._plain)
        except SealingError as exc:
            self._error = exc
            self._pos = self._len = 0
            raise
        except OSError as exc:
            self._error = SealingError(
                f"{self.name}: cannot read: {exc.strerror or exc}", code="sealing.io"
            )
            self._pos = self._len = 0
            raise self._error from exc
        self._pos = 0
        self._eof = last
