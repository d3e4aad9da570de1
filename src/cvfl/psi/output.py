"""Writing a party's rows of the intersection, in the agreed order, sealed or (if asked) plain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cvfl.data.tables import table_format
from cvfl.errors import DataError
from cvfl.fsutil import atomic_write_bytes
from cvfl.psi.source import iter_row_batches
from cvfl.psi.spill import Rows
from cvfl.sealing import KeyProvider, read_sealed, write_sealed

PURPOSE = "aligned-table"


def select_rows(path: Path, id_column: str, order: Rows, chunk_rows: int) -> pa.Table:
    """Read ``path`` in chunks and return its rows ``order[0], order[1], ...`` as one table."""
    by_row = np.argsort(order, kind="stable")
    wanted = order[by_row]
    pieces: list[pa.RecordBatch] = []
    ranks: list[Rows] = []
    schema: pa.Schema | None = None
    start = 0
    for batch in iter_row_batches(path, id_column, chunk_rows):
        schema = batch.schema
        end = start + batch.num_rows
        lo, hi = np.searchsorted(wanted, [start, end])
        if hi > lo:
            pieces.append(batch.take(pa.array(wanted[lo:hi] - start)))
            ranks.append(by_row[lo:hi])
        start = end
    if schema is None:
        schema = _schema(path, id_column)
    if len(order) and (not len(wanted) or wanted[-1] >= start):
        raise DataError(
            f"{path}: the table changed during alignment (fewer rows)", code="data.changed"
        )
    table = pa.Table.from_batches(pieces, schema=schema)
    if not ranks:
        return table
    return table.take(pa.array(np.argsort(np.concatenate(ranks), kind="stable")))


def _schema(path: Path, id_column: str) -> pa.Schema:
    if table_format(path) == "parquet":
        return pq.ParquetFile(path).schema_arrow
    convert = pacsv.ConvertOptions(column_types={id_column: pa.string()})
    return pacsv.open_csv(path, convert_options=convert).schema


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
