"""Splitting a sealed body into chunk records, knowing which one is the final chunk."""

from __future__ import annotations

import io
from collections.abc import Generator

from cvfl.errors import SealingError, mismatch
from cvfl.sealing.format import TAG_SIZE, ReadableSource

Records = Generator[tuple[int, memoryview, bool], None, None]


def read_full(source: ReadableSource, view: memoryview) -> int:
    """Fill ``view`` from ``source`` until it is full or the source ends; return bytes read."""
    got = 0
    while got < len(view):
        n = source.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def remaining_size(source: object) -> int | None:
    """Bytes left in a seekable ``source`` (None when it cannot tell, e.g. a pipe)."""
    if not isinstance(source, io.IOBase):
        return None
    try:
        if not source.seekable():
            return None
        pos = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(pos)
    except (OSError, ValueError):
        return None
    return end - pos


def _truncated(name: str, index: int, seen: int) -> SealingError:
    where = "after the header" if index == 0 else f"at chunk {index}"
    return SealingError(
        f"{name}: truncated {where}: "
        + mismatch(f"chunk {index} length", f">= {TAG_SIZE} bytes", f"{seen} bytes"),
        code="sealing.truncated",
    )


def iter_records(source: ReadableSource, chunk_size: int, name: str) -> Records:
    """Yield ``(index, record, last)`` for every chunk record (ciphertext and tag) in order.

    Each record view is valid until the next one is requested. The final record is the one that
    ends the source; a body with no record at all is refused as truncated. Seekable sources are
    split by their size (one buffer, and end of file is re-checked before the final record is
    yielded); others are read one record ahead.
    """
    remaining = remaining_size(source)
    if remaining is None:
        return _lookahead(source, chunk_size, name)
    return _sized(source, chunk_size, name, remaining)


def _sized(source: ReadableSource, chunk_size: int, name: str, remaining: int) -> Records:
    size = chunk_size + TAG_SIZE
    count = max(1, -(-remaining // size))
    buf = memoryview(bytearray(size))
    for index in range(count):
        want = min(size, remaining - index * size)
        got = read_full(source, buf[: max(want, 0)])
        if want < TAG_SIZE or got < want:
            raise _truncated(name, index, got)
        last = index == count - 1
        if last and source.read(1):
            raise SealingError(
                f"{name}: the file grew while being read (bytes after the final chunk)",
                code="sealing.extended",
            )
        yield index, buf[:got], last


def _lookahead(source: ReadableSource, chunk_size: int, name: str) -> Records:
    size = chunk_size + TAG_SIZE
    bufs = (memoryview(bytearray(size)), memoryview(bytearray(size)))
    cur = read_full(source, bufs[0])
    index = 0
    while True:
        nxt = read_full(source, bufs[(index + 1) % 2]) if cur == size else 0
        if cur < TAG_SIZE:
            raise _truncated(name, index, cur)
        yield index, bufs[index % 2][:cur], nxt == 0
        if nxt == 0:
            return
        cur = nxt
        index += 1
