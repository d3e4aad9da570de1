"""Writing a party's rows of the intersection, in the agreed order, sealed or (if asked) plain.

:func:`write_aligned` streams the table: Parquet in row groups of exactly
:data:`ALIGNED_ROW_GROUP_ROWS` rows (the last one shorter), CSV in batches of as many rows,
into an atomic sink (a temporary file, fsync, rename; sealed as it is written when keys are
given). A failure leaves no half-written table and never replaces an existing one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cvfl.errors import AlignmentError, mismatch
from cvfl.fsutil import atomic_write_bytes, atomic_writer
from cvfl.sealing import KeyProvider, read_sealed, sealed_writer, write_sealed
from cvfl.sealing.stream import SealedWriter

PURPOSE = "aligned-table"
ALIGNED_ROW_GROUP_ROWS = 65536
"""Rows per Parquet row group of an aligned table (the last group holds the rest).

The streamed reader's default block (``[data] block_rows``) is one such group. Fewer, larger
groups keep the Parquet footer small: parsed, it takes about 1 KB per row group and column
(a 10M-row, 514-column table in 8,192-row groups: 583 MiB; in 65,536-row groups: 78 MiB)."""


def encode_table(table: pa.Table, fmt: str) -> bytes:
    """Serialise a table as Parquet or CSV bytes."""
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink)
    else:
        pacsv.write_csv(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def write_table(table: pa.Table, fmt: str, out: Path, keys: KeyProvider | None) -> None:
    """Write atomically: sealed with purpose ``aligned-table`` when ``keys`` is given."""
    data = encode_table(table, fmt)
    if keys is None:
        atomic_write_bytes(out, data)
        return
    write_sealed(out, data, purpose=PURPOSE, keys=keys)


@contextlib.contextmanager
def aligned_sink(out: Path, keys: KeyProvider | None) -> Iterator[BinaryIO | SealedWriter]:
    """Yield a stream that becomes ``out`` only if the block succeeds (sealed given ``keys``)."""
    if keys is None:
        with atomic_writer(out) as handle:
            yield handle
        return
    with sealed_writer(out, purpose=PURPOSE, keys=keys) as writer:
        yield writer


class RowGroupWriter:
    """Writes tables of any length as Parquet row groups (or CSV batches) of a fixed size."""

    def __init__(
        self, sink: BinaryIO | SealedWriter, schema: pa.Schema, fmt: str, group_rows: int
    ) -> None:
        self._group = group_rows
        self._held: list[pa.Table] = []
        self._count = 0
        self.rows = 0
        self._writer: pq.ParquetWriter | pacsv.CSVWriter
        if fmt == "parquet":
            self._writer = pq.ParquetWriter(sink, schema)
        else:
            self._writer = pacsv.CSVWriter(sink, schema)

    def write(self, table: pa.Table) -> None:
        """Buffer ``table``; write every full group."""
        self._held.append(table)
        self._count += table.num_rows
        while self._count >= self._group:
            held = pa.concat_tables(self._held)
            self._emit(held.slice(0, self._group))
            rest = held.slice(self._group)
            self._held, self._count = [rest], rest.num_rows

    def close(self) -> None:
        """Write the last, shorter group and the file's footer."""
        if self._count:
            self._emit(pa.concat_tables(self._held))
        self._held, self._count = [], 0
        self._writer.close()

    def abandon(self) -> None:
        """Close the format writer after a failure (its output is being discarded)."""
        self._held, self._count = [], 0
        with contextlib.suppress(Exception):
            self._writer.close()

    def _emit(self, table: pa.Table) -> None:
        table = table.combine_chunks()
        if isinstance(self._writer, pq.ParquetWriter):
            self._writer.write_table(table, row_group_size=self._group)
        else:
            self._writer.write_table(table, max_chunksize=self._group)
        self.rows += table.num_rows


def write_aligned(
    out: Path,
    fmt: str,
    keys: KeyProvider | None,
    schema: pa.Schema,
    tables: Iterable[pa.Table],
    *,
    expected: int,
    group_rows: int = ALIGNED_ROW_GROUP_ROWS,
) -> None:
    """Stream ``tables`` (in order) into ``out`` atomically.

    Raises:
        AlignmentError: ``psi.internal`` when the rows written are not ``expected`` (then
            ``out`` is left as it was).
    """
    with aligned_sink(out, keys) as sink:
        writer = RowGroupWriter(sink, schema, fmt, group_rows)
        try:
            for table in tables:
                writer.write(table)
        except BaseException:
            writer.abandon()  # into the temporary file, removed as the sink unwinds
            raise
        writer.close()
        if writer.rows != expected:
            raise AlignmentError(
                mismatch("aligned rows written", expected, writer.rows), code="psi.internal"
            )


def read_aligned(
    path: Path, keys: KeyProvider | None, fmt: str, *, id_column: str | None = None
) -> pa.Table:
    """Read an aligned table written by :func:`write_table` (sealed when ``keys`` is given).

    For CSV, ``id_column`` (when given) is read as text, verbatim, as alignment read it.
    """
    data = path.read_bytes() if keys is None else read_sealed(path, purpose=PURPOSE, keys=keys)
    buf = pa.BufferReader(data)
    if fmt == "parquet":
        return pq.read_table(buf)
    types = {id_column: pa.string()} if id_column else {}
    return pacsv.read_csv(buf, convert_options=pacsv.ConvertOptions(column_types=types))
