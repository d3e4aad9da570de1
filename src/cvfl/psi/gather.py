"""This party's rows of the intersection in the agreed order, with bounded memory.

An external distribution sort. One pass over the input reads it in record batches, keeps the
rows of the intersection, computes their order hashes (:mod:`cvfl.psi.order`) and files each
row by its hash's top bits into one of ``2**bits`` buckets (``bits`` chosen so a bucket holds
about :data:`BUCKET_BYTES` of row data). Buffered rows go to encrypted runs
(:mod:`cvfl.psi.runs`) whenever they pass :data:`PENDING_BYTES`. Then each bucket in turn is
loaded, sorted by order hash and handed on: the buckets in order, each sorted, are the whole
intersection in order-hash order, exactly as sorting it in memory would give.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from cvfl.data.tables import table_format
from cvfl.errors import DataError
from cvfl.psi.keyed import TAG_BYTES, KeyedHasher
from cvfl.psi.order import FINGERPRINT_DOMAIN, order_key
from cvfl.psi.runs import RunStore
from cvfl.psi.source import canonical_ids, iter_row_batches
from cvfl.psi.spill import Keys, Rows, keys_from_bytes, keys_to_bytes

BUCKET_BYTES = 32 << 20
PENDING_BYTES = 64 << 20
SCAN_BYTES = 32 << 20
MAX_BUCKET_BITS = 16
SCAN_ROWS = (1024, 1 << 16)
_COUNT = struct.Struct("<Q")


def input_bytes(path: Path) -> int:
    """Estimate the decoded size of the whole table (Parquet: its metadata; CSV: file size)."""
    if table_format(path) == "parquet":
        meta = pq.ParquetFile(path).metadata
        return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return path.stat().st_size


def bucket_bits(total_bytes: int) -> int:
    """Bits of the order hash that pick a bucket: about BUCKET_BYTES of rows per bucket."""
    if total_bytes <= BUCKET_BYTES:
        return 0
    return min(MAX_BUCKET_BITS, math.ceil(math.log2(total_bytes / BUCKET_BYTES)))


def scan_rows(path: Path, total_bytes: int) -> int:
    """Rows per record batch of the pass: about SCAN_BYTES of decoded rows."""
    if table_format(path) == "parquet":
        rows = max(1, pq.ParquetFile(path).metadata.num_rows)
    else:
        rows = max(1, total_bytes // 64)
    per_row = max(1, total_bytes // rows)
    return int(min(SCAN_ROWS[1], max(SCAN_ROWS[0], SCAN_BYTES // per_row)))


def _bucket_of(tags: Keys, bits: int) -> npt.NDArray[np.int64]:
    if bits == 0:
        return np.zeros(len(tags), dtype=np.int64)
    raw = np.frombuffer(keys_to_bytes(tags), dtype=np.uint8).reshape(-1, TAG_BYTES)
    top = raw[:, 0].astype(np.int64) << 8 | raw[:, 1].astype(np.int64)
    shifted: npt.NDArray[np.int64] = top >> (16 - bits)
    return shifted


def _encode(tags: Keys, table: pa.Table) -> bytes:
    sink = io.BytesIO()
    sink.write(_COUNT.pack(len(tags)))
    sink.write(keys_to_bytes(tags))
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _decode(payload: bytes) -> tuple[Keys, pa.Table]:
    (n,) = _COUNT.unpack_from(payload)
    end = _COUNT.size + n * TAG_BYTES
    tags = keys_from_bytes(payload[_COUNT.size : end])
    table = pa.ipc.open_stream(pa.py_buffer(payload[end:])).read_all()
    return tags, table


class OrderedRows:
    """Distributes the wanted rows of a table into buckets; yields them back in order."""

    def __init__(self, path: Path, id_column: str, key: bytes, spill_dir: Path | None) -> None:
        self.path = path
        self.id_column = id_column
        self._hasher = KeyedHasher(key)
        total = input_bytes(path)
        self.bits = bucket_bits(total)
        self._scan_rows = scan_rows(path, total)
        self._runs = RunStore("aligned", 1 << self.bits, spill_dir)
        self._pending: list[list[tuple[Keys, pa.Table]]] = [[] for _ in range(1 << self.bits)]
        self._pending_bytes = 0
        self.schema: pa.Schema | None = None
        self.rows = 0
        self._digest = hashlib.sha256(FINGERPRINT_DOMAIN)

    def __enter__(self) -> OrderedRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self._runs.close()

    def distribute(self, wanted: Rows) -> None:
        """Read the table once and file rows ``wanted`` (any order) into their buckets.

        Raises:
            DataError: ``data.changed`` when the table has fewer rows than ``wanted`` needs.
        """
        wanted = np.sort(wanted)
        start = 0
        for batch in iter_row_batches(self.path, self.id_column, self._scan_rows):
            self.schema = batch.schema
            end = start + batch.num_rows
            lo, hi = np.searchsorted(wanted, [start, end])
            if hi > lo:
                self._add(pa.Table.from_batches([batch]).take(pa.array(wanted[lo:hi] - start)))
            start = end
        if len(wanted) and wanted[-1] >= start:
            raise DataError(
                f"{self.path}: the table changed during alignment (fewer rows)",
                code="data.changed",
            )

    def _add(self, table: pa.Table) -> None:
        column = table.column(self.id_column).combine_chunks()
        ids = canonical_ids(column, path=self.path, name=self.id_column, start=0)
        tags = keys_from_bytes(self._hasher.tags(ids))
        buckets = _bucket_of(tags, self.bits)
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange((1 << self.bits) + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            sel = order[bounds[b] : bounds[b + 1]]
            self._pending[b].append((tags[sel], table.take(pa.array(sel))))
        self._pending_bytes += table.nbytes
        if self._pending_bytes > PENDING_BYTES:
            self._flush()

    def _flush(self) -> None:
        for b, parts in enumerate(self._pending):
            if parts:
                tags = np.concatenate([p[0] for p in parts])
                table = pa.concat_tables([p[1] for p in parts])
                self._runs.append(b, _encode(tags, table))
                self._pending[b] = []
        self._pending_bytes = 0

    def fingerprint(self) -> bytes:
        """The order fingerprint of the rows yielded so far (all of them, once done)."""
        return self._digest.digest()

    def sorted_tables(self) -> Iterator[pa.Table]:
        """Yield each bucket's rows sorted by order hash; the fingerprint grows with them."""
        for b, pending in enumerate(self._pending):
            parts = [_decode(payload) for payload in self._runs.read(b)] + pending
            self._pending[b] = []
            if not parts:
                continue
            tags = np.concatenate([p[0] for p in parts])
            table = pa.concat_tables([p[1] for p in parts])
            del parts
            perm = np.argsort(tags, kind="stable")
            self._digest.update(keys_to_bytes(tags[perm]))
            self.rows += len(perm)
            yield table.take(pa.array(perm))


def ordered_rows(
    path: Path, id_column: str, job_id: str, seed: int, spill_dir: Path | None
) -> OrderedRows:
    """An :class:`OrderedRows` for ``path`` under the job's order key."""
    return OrderedRows(path, id_column, order_key(job_id, seed), spill_dir)
