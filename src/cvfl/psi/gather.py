"""This party's rows of the intersection in the agreed order, with bounded memory.

An external distribution sort. One pass over the input reads it in record batches, keeps the
rows of the intersection, computes their order hashes (:mod:`cvfl.psi.order`) and files each
row by its hash's top bits into one of ``2**bits`` buckets (``bits`` chosen so a bucket holds
about :data:`BUCKET_BYTES` of row data). Buffered rows go to encrypted runs
(:mod:`cvfl.psi.runs`) whenever they pass :func:`pending_bytes`: the scanned batches are kept
whole until then and split by bucket only at the flush, one compressed record per bucket, so
neither the count of buffered pieces nor the per-record framing grows with the bucket count.
Then each bucket in turn is loaded, sorted by order hash and handed on: the buckets in order,
each sorted, are the whole intersection in order-hash order, exactly as sorting it in memory
would give.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from cvfl.errors import DataError
from cvfl.psi.keyed import TAG_BYTES, KeyedHasher
from cvfl.psi.order import FINGERPRINT_DOMAIN, order_key
from cvfl.psi.runs import RunStore
from cvfl.psi.source import canonical_ids, iter_row_batches, table_schema
from cvfl.psi.spill import Keys, keys_from_bytes, keys_to_bytes

BUCKET_BYTES = 32 << 20
PENDING_BYTES = 32 << 20
MAX_PENDING_BYTES = 128 << 20
RECORD_BYTES = 256 << 10
CODEC = "zstd"
_SIZE = struct.Struct("<Q")
SCAN_BYTES = 8 << 20
MAX_BUCKET_BITS = 16
SCAN_ROWS = (256, 1 << 16)
VARIABLE_BYTES = 32
HASH_FIELD = pa.field("order hash", pa.binary(TAG_BYTES), nullable=False)


def row_bytes(schema: pa.Schema) -> int:
    """Estimate one row's decoded size: fixed-width columns exactly, others as VARIABLE_BYTES."""
    total = 0
    for kind in schema.types:
        try:
            total += max(1, kind.bit_width // 8)
        except ValueError:
            total += VARIABLE_BYTES
    return max(1, total)


def bucket_bits(total_bytes: int) -> int:
    """Bits of the order hash that pick a bucket: about BUCKET_BYTES of rows per bucket."""
    if total_bytes <= BUCKET_BYTES:
        return 0
    return min(MAX_BUCKET_BITS, math.ceil(math.log2(total_bytes / BUCKET_BYTES)))


def pending_bytes(bits: int) -> int:
    """Rows buffered before a flush: enough for about RECORD_BYTES per bucket, within bounds."""
    return int(min(MAX_PENDING_BYTES, max(PENDING_BYTES, RECORD_BYTES << bits)))


def scan_rows(width: int) -> int:
    """Rows per record batch of the pass: about SCAN_BYTES of decoded rows."""
    return int(min(SCAN_ROWS[1], max(SCAN_ROWS[0], SCAN_BYTES // width)))


def batch_rows(path: Path, id_column: str) -> int:
    """Rows per record batch for reading ``path`` with bounded memory (see :func:`scan_rows`)."""
    return scan_rows(row_bytes(table_schema(path, id_column)))


def _bucket_of(tags: Keys, bits: int) -> npt.NDArray[np.int64]:
    if bits == 0:
        return np.zeros(len(tags), dtype=np.int64)
    raw = np.frombuffer(keys_to_bytes(tags), dtype=np.uint8).reshape(-1, TAG_BYTES)
    top = raw[:, 0].astype(np.int64) << 8 | raw[:, 1].astype(np.int64)
    shifted: npt.NDArray[np.int64] = top >> (16 - bits)
    return shifted


def _encode(tags: Keys, table: pa.Table) -> bytes:
    """One run record: the rows and, as a last column, their order hashes.

    Arrow IPC without a schema, compressed with :data:`CODEC` after its decoded size (u64).
    """
    hashes = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(TAG_BYTES), len(tags), [None, pa.py_buffer(keys_to_bytes(tags))]
    )
    batch = table.append_column(HASH_FIELD, hashes).combine_chunks().to_batches()[0]
    raw = batch.serialize()
    packed: bytes = pa.compress(raw, codec=CODEC, asbytes=True)
    return _SIZE.pack(raw.size) + packed


def _decode(payload: bytes, schema: pa.Schema) -> tuple[Keys, pa.RecordBatch]:
    (size,) = _SIZE.unpack_from(payload)
    raw = pa.decompress(memoryview(payload)[_SIZE.size :], decompressed_size=size, codec=CODEC)
    batch = pa.ipc.read_record_batch(raw, schema.append(HASH_FIELD))
    hashes = batch.column(batch.num_columns - 1)
    data = hashes.buffers()[1]
    tags = keys_from_bytes(data.to_pybytes()[hashes.offset * TAG_BYTES :][: len(batch) * TAG_BYTES])
    return tags, pa.RecordBatch.from_arrays(batch.columns[:-1], schema=schema)


def _release() -> None:
    """Hand freed Arrow memory back to the system (the allocator keeps it otherwise)."""
    pa.default_memory_pool().release_unused()


class OrderedRows:
    """Distributes the wanted rows of a table into buckets; yields them back in order."""

    def __init__(self, path: Path, id_column: str, key: bytes, spill_dir: Path | None) -> None:
        self.path = path
        self.id_column = id_column
        self._hasher = KeyedHasher(key)
        self.schema = table_schema(path, id_column)
        self.bits = 0
        self._runs = RunStore("aligned", 1 << MAX_BUCKET_BITS, spill_dir)
        self._pending: list[tuple[Keys, npt.NDArray[np.int64], pa.Table]] = []
        self._pending_bytes = 0
        self._flush_bytes = PENDING_BYTES
        self.rows = 0
        self._digest = hashlib.sha256(FINGERPRINT_DOMAIN)

    def __enter__(self) -> OrderedRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self._runs.close()

    def distribute(self, wanted: npt.NDArray[np.bool_]) -> None:
        """Read the table once and file the rows where ``wanted`` is true into their buckets.

        Raises:
            DataError: ``data.changed`` when the table has fewer rows than ``wanted`` needs.
        """
        width = row_bytes(self.schema)
        self.bits = bucket_bits(width * int(np.count_nonzero(wanted)))
        self._flush_bytes = pending_bytes(self.bits)
        start = 0
        for batch in iter_row_batches(self.path, self.id_column, scan_rows(width)):
            self.schema = batch.schema
            end = start + batch.num_rows
            local = np.flatnonzero(wanted[start:end])
            if len(local):
                self._add(pa.Table.from_batches([batch]).take(pa.array(local)))
            start = end
        if wanted[start:].any():
            raise DataError(
                f"{self.path}: the table changed during alignment (fewer rows)",
                code="data.changed",
            )

    def _add(self, table: pa.Table) -> None:
        column = table.column(self.id_column).combine_chunks()
        ids = canonical_ids(column, path=self.path, name=self.id_column, start=0)
        tags = keys_from_bytes(self._hasher.tags(ids))
        self._pending.append((tags, _bucket_of(tags, self.bits), table))
        self._pending_bytes += table.nbytes
        if self._pending_bytes > self._flush_bytes:
            self._flush()

    def _flush(self) -> None:
        """Split the buffered rows by bucket and append one record to each bucket's run."""
        if not self._pending:
            return
        tags, buckets, table = self._take_pending()
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange((1 << self.bits) + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            sel = order[bounds[b] : bounds[b + 1]]
            self._runs.append(int(b), _encode(tags[sel], table.take(pa.array(sel))))
        del table
        _release()

    def _take_pending(self) -> tuple[Keys, npt.NDArray[np.int64], pa.Table]:
        """Empty the buffer into one contiguous table (its pieces freed) with tags and buckets."""
        tags = np.concatenate([p[0] for p in self._pending])
        buckets = np.concatenate([p[1] for p in self._pending])
        table = pa.concat_tables([p[2] for p in self._pending]).combine_chunks()
        self._pending = []
        self._pending_bytes = 0
        return tags, buckets, table

    def fingerprint(self) -> bytes:
        """The order fingerprint of the rows yielded so far (all of them, once done)."""
        return self._digest.digest()

    def sorted_tables(self) -> Iterator[pa.Table]:
        """Yield each bucket's rows sorted by order hash; the fingerprint grows with them."""
        self._flush()
        for b in range(1 << self.bits):
            spilled = [_decode(payload, self.schema) for payload in self._runs.read(b)]
            if not spilled:
                continue
            tags = np.concatenate([p[0] for p in spilled])
            table = pa.Table.from_batches([p[1] for p in spilled], schema=self.schema)
            del spilled
            perm = np.argsort(tags, kind="stable")
            self._digest.update(keys_to_bytes(tags[perm]))
            self.rows += len(perm)
            yield table.take(pa.array(perm))
            del table
            _release()


def ordered_rows(
    path: Path, id_column: str, job_id: str, seed: int, spill_dir: Path | None
) -> OrderedRows:
    """An :class:`OrderedRows` for ``path`` under the job's order key."""
    return OrderedRows(path, id_column, order_key(job_id, seed), spill_dir)
