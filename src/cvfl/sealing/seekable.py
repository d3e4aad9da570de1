"""A seekable, verifying reader of a sealed file: only the chunks a read touches are decrypted.

A sealed file's chunks are fixed-size (``chunk_size`` plaintext bytes, the final one possibly
shorter), so plaintext offset ``p`` lies in chunk ``p // chunk_size`` and that chunk's record
starts at ``header + index * (chunk_size + 16)``. The reader derives the plaintext size from the
file's length, refuses a length no layout fits, and opens the final chunk (with its ``last``
flag in the associated data) when it is constructed: a file cut short at a chunk boundary, or
extended, fails there. Every other chunk is authenticated when a read first touches it, and a
chunk that does not verify raises :class:`~cvfl.errors.SealingError` (and so does every later
read). Unverified plaintext is never returned.

This is what lets Arrow read single row groups of a sealed Parquet file (training's streamed
reader, :mod:`cvfl.train.stream`) without decrypting the whole file.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, TypeVar

from cvfl.errors import SealingError, mismatch
from cvfl.sealing.format import TAG_SIZE, check_purpose, plaintext_length, read_header
from cvfl.sealing.keys import KeyProvider
from cvfl.sealing.stream import ChunkOpener, authenticate

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import WriteableBuffer

_T = TypeVar("_T")


class SeekableSealedReader(io.RawIOBase):
    """Random-access verified plaintext of a sealed file opened for binary reading.

    The reader does not own ``handle`` unless ``owns`` is set (then :meth:`close` closes it).
    """

    def __init__(
        self,
        handle: io.BufferedIOBase,
        *,
        purpose: str,
        keys: KeyProvider,
        name: str = "<stream>",
        owns: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self._handle, self._owns = handle, owns
        check_purpose(purpose)
        handle.seek(0)
        self.header = read_header(handle, name)
        self._opener = ChunkOpener(
            self.header, authenticate(self.header, purpose, keys, name), name
        )
        self._chunk = self.header.chunk_size
        self._record = self._chunk + TAG_SIZE
        body = self._io(lambda: handle.seek(0, io.SEEK_END)) - self.header.length
        size = plaintext_length(body, self._chunk)
        if size is None:
            raise SealingError(
                f"{name}: truncated: "
                + mismatch("chunk layout", f"whole records of {self._record} bytes", body),
                code="sealing.truncated",
            )
        self._size = size
        self._count = -(-body // self._record)
        self._plain = memoryview(bytearray(self._chunk))
        self._cached = -1  # the chunk whose plaintext is in _plain
        self._cached_len = 0
        self._pos = 0
        self._error: SealingError | None = None
        self._load(self._count - 1)  # the final chunk: its flag proves nothing was cut off

    @property
    def size(self) -> int:
        """Plaintext bytes in the file."""
        return self._size

    def readable(self) -> bool:
        """Sealed readers are readable."""
        return True

    def seekable(self) -> bool:
        """Any plaintext offset can be read."""
        return True

    def tell(self) -> int:
        """The current plaintext offset."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        """Move to a plaintext offset (past the end reads nothing); return it."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Fill ``buffer`` with verified plaintext from the current offset; return the count."""
        out = memoryview(buffer).cast("B")
        got = 0
        while got < len(out) and self._pos < self._size:
            index, within = divmod(self._pos, self._chunk)
            self._load(index)
            take = min(len(out) - got, self._cached_len - within)
            out[got : got + take] = self._plain[within : within + take]
            got += take
            self._pos += take
        return got

    def readall(self) -> bytes:
        """Read everything from the current offset to the end."""
        out = bytearray(max(0, self._size - self._pos))
        n = self.readinto(out)
        return bytes(out[:n])

    def close(self) -> None:
        """Close the reader (and the handle it owns) and wipe its plaintext buffer."""
        if not self.closed:
            if hasattr(self, "_plain"):
                self._plain[:] = bytes(len(self._plain))
            if self._owns:
                self._handle.close()
        super().close()

    def _load(self, index: int) -> None:
        """Decrypt and verify chunk ``index`` into the buffer unless it is there already."""
        if self._error is not None:
            raise self._error
        if self.closed:
            raise SealingError(f"{self.name}: read after close", code="sealing.closed")
        if index == self._cached:
            return
        last = index == self._count - 1
        want = (self._size - index * self._chunk) + TAG_SIZE if last else self._record
        self._cached = -1
        try:
            self._io(lambda: self._handle.seek(self.header.length + index * self._record))
            record = self._io(lambda: self._read(want))
            if len(record) != want:
                raise SealingError(
                    f"{self.name}: " + mismatch(f"chunk {index} length", want, len(record)),
                    code="sealing.truncated",
                )
            self._cached_len = self._opener.open_into(index, memoryview(record), last, self._plain)
        except SealingError as exc:
            self._error = exc
            raise
        self._cached = index

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes from the handle (short reads are retried until its end)."""
        parts: list[bytes] = []
        left = size
        while left > 0:
            part = self._handle.read(left)
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _io(self, call: Callable[[], _T]) -> _T:
        """Run a call on the handle; an OS error becomes ``sealing.io``."""
        try:
            return call()
        except OSError as exc:
            self._error = SealingError(
                f"{self.name}: cannot read: {exc.strerror or exc}", code="sealing.io"
            )
            raise self._error from exc


def open_seekable(
    path: os.PathLike[str] | str, *, purpose: str, keys: KeyProvider
) -> SeekableSealedReader:
    """Open ``path`` for random-access verified reading (the reader owns the file handle).

    Raises:
        SealingError: a missing or unreadable file (``sealing.missing``, ``sealing.io``), a
            wrong key, purpose or header, or a length no chunk layout fits.
    """
    name = str(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the reader owns and closes it
    except FileNotFoundError as exc:
        raise SealingError(f"{name}: no such file", code="sealing.missing") from exc
    except OSError as exc:
        raise SealingError(
            f"{name}: cannot read: {exc.strerror or exc}", code="sealing.io"
        ) from exc
    try:
        return SeekableSealedReader(handle, purpose=purpose, keys=keys, name=name, owns=True)
    except BaseException:
        handle.close()
        raise
