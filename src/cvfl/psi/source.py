"""Reading a party's id column in chunks and canonicalising ids before hashing.

Canonical form: a one-byte kind tag, then the bytes. Strings and integers share the text kind
(``b"t"`` + UTF-8 of the string, or of the integer's decimal form), as in :mod:`cvfl.data`, which
treats ids as text, so a CSV whose id column was inferred as integers matches a Parquet file
that stores the same ids as strings. Binary ids use ``b"b"`` + the raw bytes. Strings are not
Unicode-normalised: two spellings that differ in code points are different ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cvfl.data.tables import table_format
from cvfl.errors import DataError

TEXT_TAG = b"t"
BINARY_TAG = b"b"


@dataclass(frozen=True)
class IdChunk:
    """One chunk of canonical ids and the row number of its first id."""

    start: int
    items: list[bytes]


def canonical_ids(column: pa.Array, *, path: Path, name: str, start: int) -> list[bytes]:
    """Canonicalise one Arrow array of ids; nulls and unsupported types are a DataError."""
    if column.null_count:
        first = start + int(pc.index(column.is_null(), True).as_py())
        raise DataError(f"{path}: column {name!r} row {first}: missing id", code="data.null")
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _prefixed(column, TEXT_TAG, large=pa.types.is_large_string(kind))
    if pa.types.is_integer(kind):
        return [TEXT_TAG + str(v).encode("ascii") for v in column.to_pylist()]
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [BINARY_TAG + v for v in column.to_pylist()]
    raise DataError(
        f"{path}: column {name!r}: expected string, integer or binary ids, seen {kind}",
        code="data.type",
    )


def _prefixed(column: pa.Array, tag: bytes, *, large: bool) -> list[bytes]:
    """Return ``tag + UTF-8 bytes`` of each string, joined in Arrow (no str round trip)."""
    kind = pa.large_binary() if large else pa.binary()
    joined = pc.binary_join_element_wise(
        pa.scalar(tag, kind), column.cast(kind), pa.scalar(b"", kind)
    )
    return list(joined.to_pylist())


def iter_id_chunks(path: Path, id_column: str, chunk_rows: int) -> Iterator[IdChunk]:
    """Yield the id column of a Parquet or CSV file in chunks of about ``chunk_rows`` ids."""
    start = 0
    for batch in _iter_batches(path, id_column, chunk_rows, only_ids=True):
        if id_column not in batch.schema.names:
            raise DataError(f"{path}: no column {id_column!r}", code="data.column")
        column = batch.column(id_column)
        yield IdChunk(start, canonical_ids(column, path=path, name=id_column, start=start))
        start += batch.num_rows


def table_schema(path: Path, id_column: str) -> pa.Schema:
    """The schema :func:`iter_row_batches` yields (a CSV id column as text).

    Raises:
        DataError: the file is missing or cannot be read.
    """
    fmt = table_format(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", code="data.missing_file")
    try:
        if fmt == "parquet":
            return pq.ParquetFile(path).schema_arrow
        convert = pacsv.ConvertOptions(column_types={id_column: pa.string()})
        return pacsv.open_csv(path, convert_options=convert).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {exc}", code="data.unreadable") from exc


def iter_row_batches(path: Path, id_column: str, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Yield all columns of a Parquet or CSV file in record batches."""
    yield from _iter_batches(path, id_column, chunk_rows, only_ids=False)


def _iter_batches(
    path: Path, id_column: str, chunk_rows: int, *, only_ids: bool
) -> Iterator[pa.RecordBatch]:
    """Read in chunks; a CSV id column is read as text, verbatim (no type inference)."""
    columns = [id_column] if only_ids else None
    fmt = table_format(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", code="data.missing_file")
    try:
        if fmt == "parquet":
            # One row group at a time and no read-ahead: a single iter_batches over the whole
            # file, with pre-buffering, held about the file's size in memory by its end.
            pf = pq.ParquetFile(path, pre_buffer=False)
            if columns and any(c not in pf.schema_arrow.names for c in columns):
                raise DataError(f"{path}: no column {columns[0]!r}", code="data.column")
            for group in range(pf.num_row_groups):
                yield from pf.iter_batches(
                    batch_size=chunk_rows, columns=columns, row_groups=[group]
                )
            return
        convert = pacsv.ConvertOptions(
            include_columns=columns or [], column_types={id_column: pa.string()}
        )
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=max(1 << 16, chunk_rows * 64)),
            convert_options=convert,
        )
        yield from reader
    except (pa.ArrowInvalid, pa.ArrowKeyError, OSError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {exc}", code="data.unreadable") from exc
