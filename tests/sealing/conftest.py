"""Shared helpers for the sealing tests: real key files, small chunks, in-memory sealing."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from cvfl.errors import SealingError
from cvfl.sealing import FileKeyProvider, SealedReader, SealedWriter, new_key_file

CS = 32  # a small chunk size keeps every test fast
PURPOSE = "checkpoint"


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyProvider:
    return new_key_file(tmp_path / "keys" / "a.key")


@pytest.fixture
def other_keys(tmp_path: Path) -> FileKeyProvider:
    return new_key_file(tmp_path / "keys" / "b.key")


def seal_bytes(
    data: bytes, keys: FileKeyProvider, *, chunk_size: int = CS, purpose: str = PURPOSE
) -> bytes:
    sink = io.BytesIO()
    writer = SealedWriter(sink, purpose=purpose, keys=keys, chunk_size=chunk_size)
    writer.write(data)
    writer.finish()
    return sink.getvalue()


class Unseekable(io.RawIOBase):
    """A pipe-like source: not seekable, and it returns at most 7 bytes per read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        return self._inner.readinto(view[:7])


def unseal_bytes(blob: bytes, keys: FileKeyProvider, *, purpose: str = PURPOSE) -> bytes:
    """Unseal from a seekable source and from a pipe-like one; both must agree."""
    seekable = _attempt(lambda: SealedReader(io.BytesIO(blob), purpose=purpose, keys=keys))
    piped = _attempt(lambda: SealedReader(Unseekable(blob), purpose=purpose, keys=keys))
    assert type(seekable) is type(piped)
    if isinstance(seekable, Exception):
        raise seekable
    assert seekable == piped
    return seekable


def _attempt(make: Callable[[], SealedReader]) -> bytes | SealingError:
    try:
        return make().readall()
    except SealingError as exc:
        return exc


def header_len(blob: bytes) -> int:
    """Length of a sealed blob's header, from its own length fields."""
    purpose_len = blob[46]
    key_len = blob[47 + purpose_len]
    return 47 + purpose_len + 1 + key_len + 32


def records(blob: bytes, chunk_size: int = CS) -> tuple[bytes, list[bytes]]:
    """Split a sealed blob into its header and its chunk records."""
    h = header_len(blob)
    size = chunk_size + 16
    body = blob[h:]
    return blob[:h], [body[i : i + size] for i in range(0, len(body), size)]
