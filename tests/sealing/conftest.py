"""Shared helpers for the sealing tests: real key files, small chunks, in-memory sealing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

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


def unseal_bytes(blob: bytes, keys: FileKeyProvider, *, purpose: str = PURPOSE) -> bytes:
    return SealedReader(io.BytesIO(blob), purpose=purpose, keys=keys).readall()


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
