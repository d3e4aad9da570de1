"""Append-only, encrypted spill files: one file per bucket, a run of records in each.

A record on disk is ``u32 length ‖ AES-256-GCM(payload)`` (little-endian length of the
ciphertext, tag included). The key is random per run and lives only in this process's memory;
the nonce is the bucket and the record's index within it (``u32 ‖ u64``), so a record moved to
another place or another bucket fails authentication. The store counts the records it wrote
per bucket, so a run cut short or extended at a record boundary is refused as well.
"""

from __future__ import annotations

import secrets
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cvfl.errors import SealingError, mismatch

_LENGTH = struct.Struct("<I")
_NONCE = struct.Struct("<IQ")
TAG_BYTES = 16
MAX_RECORD = (1 << 32) - 1 - TAG_BYTES


def seal_record(aead: AESGCM, bucket: int, index: int, payload: bytes | memoryview) -> bytes:
    """Return one on-disk record: the ciphertext's length, then the ciphertext."""
    if len(payload) > MAX_RECORD:
        raise ValueError(f"a spill record holds at most {MAX_RECORD} bytes, seen {len(payload)}")
    sealed = aead.encrypt(_NONCE.pack(bucket, index), payload, None)
    return _LENGTH.pack(len(sealed)) + sealed


def open_records(aead: AESGCM, bucket: int, data: bytes, count: int, name: str) -> Iterator[bytes]:
    """Yield the payloads of ``data``, a run of exactly ``count`` records of ``bucket``.

    Raises:
        SealingError: ``sealing.truncated`` (a record cut short, or fewer or more records than
            written) or ``sealing.chunk_tampered`` (a record failed authentication).
    """
    view = memoryview(data)
    pos, index = 0, 0
    while pos < len(view):
        if pos + _LENGTH.size > len(view):
            raise SealingError(f"{name}: record {index} cut short", code="sealing.truncated")
        (size,) = _LENGTH.unpack_from(view, pos)
        pos += _LENGTH.size
        if size < TAG_BYTES or pos + size > len(view):
            raise SealingError(f"{name}: record {index} cut short", code="sealing.truncated")
        try:
            yield aead.decrypt(_NONCE.pack(bucket, index), view[pos : pos + size], None)
        except InvalidTag:
            raise SealingError(
                f"{name}: record {index} failed authentication (tampered or moved)",
                code="sealing.chunk_tampered",
            ) from None
        pos += size
        index += 1
    if index != count:
        raise SealingError(
            f"{name}: " + mismatch("records", count, index), code="sealing.truncated"
        )


class RunStore:
    """Per-bucket encrypted runs in a private temporary folder, deleted on :meth:`close`."""

    def __init__(self, name: str, buckets: int, spill_dir: Path | None) -> None:
        self.name = name
        self._aead = AESGCM(secrets.token_bytes(32))
        self._root = spill_dir
        self._dir: Path | None = None
        self._counts = [0] * buckets
        self.bytes_written = 0

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, bucket: int, payload: bytes | memoryview) -> None:
        """Encrypt ``payload`` and append it to ``bucket``'s run."""
        record = seal_record(self._aead, bucket, self._counts[bucket], payload)
        with self._path(bucket).open("ab") as handle:
            handle.write(record)
        self._counts[bucket] += 1
        self.bytes_written += len(record)

    def read(self, bucket: int) -> Iterator[bytes]:
        """Yield ``bucket``'s payloads in the order they were appended (verified)."""
        if not self._counts[bucket]:
            return
        path = self._path(bucket)
        yield from open_records(
            self._aead, bucket, path.read_bytes(), self._counts[bucket], str(path)
        )

    def close(self) -> None:
        """Delete the runs."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _path(self, bucket: int) -> Path:
        if self._dir is None:
            root = self._root or Path(tempfile.gettempdir())
            root.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix=f"cvfl-psi-{self.name}-", dir=root))
        return self._dir / f"r{bucket:05d}.run"
