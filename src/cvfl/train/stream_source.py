"""Where the streamed reader's rows come from: a Parquet table's row groups, plaintext or sealed.

A sealed table is read through :class:`~cvfl.sealing.seekable.SeekableSealedReader`, so only the
chunks of the row groups read are decrypted and verified. Rows are decoded and checked by the
same code as the in-memory reader (:func:`cvfl.data.tables.validate`), a range of rows at a
time; a problem names the file, the column and the row counted from the start of the table.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cvfl.data.check import apply_state, no_empty_ids
from cvfl.data.prep import Preprocessing
from cvfl.data.tables import (
    TableSchema,
    _ids,
    _labels,
    _require_column,
    table_format,
    validate,
)
from cvfl.errors import ConfigError, DataError, SealingError
from cvfl.sealing import KeyProvider, is_sealed
from cvfl.sealing.artifacts import require_form
from cvfl.sealing.seekable import open_seekable

PURPOSE = "aligned-table"  # what cvfl.psi.output seals aligned tables (and inputs) with
READ_ROWS = 8192  # rows decoded and checked at a time (bounds the int64 copy of a read)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Rows:
    """Decoded rows ``[start, start + len)`` of the table: ids, features, labels."""

    start: int
    ids: tuple[str, ...]
    features: np.ndarray
    labels: np.ndarray | None


class ParquetSource:
    """A Parquet training table read by row ranges (one open file per thread).

    With :attr:`prep` set (``[data.columns]``, :mod:`cvfl.train.stream_prep`), rows are read
    through the fitted preprocessing: its input columns in, its float32 matrix out.
    """

    prep: Preprocessing | None = None

    def __init__(
        self, path: Path, schema: TableSchema, keys: KeyProvider | None, *, sealed: bool | None
    ) -> None:
        """Open ``path``; ``sealed`` is the aligned table's required form (None: either).

        Raises:
            ConfigError: a CSV table (``config.data``: the streamed reader needs Parquet).
            SealingError: the wrong form, no key for a sealed table, or a sealed file that
                fails to open.
            DataError: a table that is not readable Parquet, or has no rows or columns.
        """
        if table_format(path) != "parquet":
            raise ConfigError(
                f'{path}: [data] reader = "stream" reads Parquet row groups; this table is CSV '
                '(write the table, or the aligned output, as .parquet, or use reader = "memory")',
                code="config.data",
            )
        if sealed is not None:
            require_form(path, sealed=sealed)
        self.sealed = is_sealed(path)
        if self.sealed and keys is None:
            raise SealingError(f"{path}: the table is sealed; add [sealing]", code="sealing.no_key")
        self.path, self.keys = path, keys
        self._local = threading.local()
        self._meta: pq.FileMetaData | None = None
        meta = self._meta = self.file().metadata  # parsed once, shared by every thread
        if meta.num_rows == 0:
            raise DataError(f"{path}: the table is empty (0 rows)", code="data.empty")
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self.group_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.rows = int(meta.num_rows)
        names = self.file().schema_arrow.names
        if schema.id_column not in names:
            raise DataError(
                f"{path}: missing column {schema.id_column!r}", code="data.missing_column"
            )
        features = schema.features or tuple(
            c for c in names if c not in (schema.id_column, schema.label_column)
        )
        if not features:
            raise DataError(f"{path}: no feature columns", code="data.no_features")
        self.schema = replace(schema, features=features)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The feature columns, in model order (the preprocessing's outputs, if fitted)."""
        return self.prep.output_names if self.prep is not None else self.schema.features

    @property
    def arrow_schema(self) -> pa.Schema:
        """The table's columns and their types."""
        schema: pa.Schema = self.file().schema_arrow
        return schema

    def column(self, name: str) -> pa.Table:
        """Column ``name`` of every row, as a one-column table (the only one held)."""
        try:
            return self.file().read(columns=[name])
        except SealingError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._refusal(f"column {name!r}", exc) from exc

    def file(self) -> pq.ParquetFile:
        """This thread's open Parquet file (a sealed one through a verifying seekable reader)."""
        handle: pq.ParquetFile | None = getattr(self._local, "file", None)
        if handle is None:
            try:
                if self.sealed:
                    assert self.keys is not None
                    raw: Any = open_seekable(self.path, purpose=PURPOSE, keys=self.keys)
                    handle = pq.ParquetFile(raw, metadata=self._meta)
                else:
                    handle = pq.ParquetFile(self.path, metadata=self._meta)
            except (pa.ArrowException, OSError) as exc:
                raise DataError(
                    f"{self.path}: cannot read as parquet: {exc}", code="data.unreadable"
                ) from exc
            self._local.file = handle
        return handle

    def read(
        self,
        start: int,
        stop: int,
        *,
        labels: bool = False,
        ids_only: bool = False,
        dtype: np.dtype[Any] | None = None,
    ) -> Rows:
        """Decode and check rows ``[start, stop)`` (every row group they touch is read).

        Args:
            start: First row.
            stop: Row after the last.
            labels: Also decode the label column (the leader).
            ids_only: Decode only the ids (and labels when asked), no features.
            dtype: The features' type (default as :func:`cvfl.data.tables.validate`), narrower
                when the caller knows every checked value fits.
        """
        columns = [self.schema.id_column]
        if not ids_only:
            columns += list(self.prep.input_columns if self.prep else self.feature_names)
        label = self.schema.label_column if labels else None
        if label is not None:
            columns.append(label)
        first = int(np.searchsorted(self.group_starts, start, side="right")) - 1
        last = int(np.searchsorted(self.group_starts, stop, side="left"))
        parts = []
        for g in range(first, last):
            low = max(start, int(self.group_starts[g])) - int(self.group_starts[g])
            high = min(stop, int(self.group_starts[g + 1])) - int(self.group_starts[g])
            parts.append(self._group_rows(g, columns, low, high))
        table = pa.concat_tables(parts)
        schema = replace(self.schema, label_column=label)
        if ids_only:
            return _checked(lambda: _ids_and_labels(table, self.path, schema, start), start)
        if self.prep is not None:
            return _checked(lambda: self._prepared(table, schema, start), start)
        decoded = _checked(lambda: validate(table, self.path, schema, dtype=dtype), start)
        return Rows(start, decoded.ids, decoded.features, decoded.labels)

    def _prepared(self, table: pa.Table, schema: TableSchema, start: int) -> Rows:
        """Rows decoded through the fitted preprocessing, checked as the memory reader does."""
        assert self.prep is not None
        no_empty_ids(table.column(schema.id_column), self.path, schema.id_column)
        decoded = apply_state(table, self.path, self.prep, schema)
        return Rows(start, decoded.ids, decoded.features, decoded.labels)

    def _group_rows(self, index: int, columns: list[str], low: int, high: int) -> pa.Table:
        """Rows ``[low, high)`` of row group ``index``, decoded :data:`READ_ROWS` at a time.

        Each thread keeps a cursor in the group it read last: reads that move forward through
        a group (every read of this module does) decode it once, holding only the record
        batches not yet passed, however large the group.
        """
        key = (index, tuple(columns))
        cursor: _Cursor | None = getattr(self._local, "cursor", None)
        if cursor is None or cursor.key != key or cursor.start > low:
            self._local.cursor = None  # the previous cursor's batches go before new ones come
            cursor = _Cursor(key, self._batches(index, columns))
            self._local.cursor = cursor
        rows = cursor.rows(low, high, lambda exc: self._refusal(f"row group {index}", exc))
        if high == self.group_starts[index + 1] - self.group_starts[index]:
            self._local.cursor = None  # at the group's end: its reader's buffers go now
        return rows

    def _batches(self, index: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
        try:
            batches: Iterator[pa.RecordBatch] = self.file().iter_batches(
                batch_size=READ_ROWS, row_groups=[index], columns=columns
            )
            return batches
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._refusal(f"row group {index}", exc) from exc

    def _refusal(self, what: str, exc: Exception) -> Exception:
        """The error to raise for a failed read of ``what`` (a row group, a column)."""
        if isinstance(exc, SealingError):
            return exc
        if isinstance(exc.__context__, SealingError):  # raised inside Arrow's read call
            return exc.__context__
        return DataError(
            f"{self.path}: cannot read {what} as parquet: {exc}", code="data.unreadable"
        )

    def ranges(self, step: int) -> Iterator[tuple[int, int]]:
        """Consecutive row ranges of at most ``step`` rows that cover the table."""
        for start in range(0, self.rows, step):
            yield start, min(start + step, self.rows)


class _Cursor:
    """A forward-only position in one row group's record batches (rows ``[start, end)`` held)."""

    def __init__(self, key: tuple[int, tuple[str, ...]], batches: Iterator[pa.RecordBatch]) -> None:
        self.key = key
        self._batches = batches
        self._held: list[pa.RecordBatch] = []
        self.start = 0  # the first row held
        self._end = 0  # the row after the last one held

    def rows(self, low: int, high: int, refusal: Callable[[Exception], Exception]) -> pa.Table:
        """Rows ``[low, high)`` of the group (``low >= start``); earlier batches are dropped."""
        while self._held and self.start + self._held[0].num_rows <= low:
            self.start += self._held.pop(0).num_rows
        while self._end < high:
            try:
                batch = next(self._batches)
            except StopIteration:
                break
            except SealingError:
                raise
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise refusal(exc) from exc
            if self._end + batch.num_rows <= low:  # wholly before the rows asked for
                self.start = self._end = self._end + batch.num_rows
                continue
            self._held.append(batch)
            self._end += batch.num_rows
        if not self._held or self._end < high:
            raise refusal(ValueError(f"rows up to {high} asked for, the group ends at {self._end}"))
        return pa.Table.from_batches(self._held).slice(low - self.start, high - low)


def _ids_and_labels(table: pa.Table, path: Path, schema: TableSchema, start: int) -> Rows:
    """The checked ids (and labels, when the schema names them) of ``table``."""
    ids = _ids(table, path, schema.id_column)
    labels = None
    if schema.label_column is not None:
        _require_column(table, path, schema.label_column)
        labels = _labels(table.column(schema.label_column), path, schema.label_column, schema)
    return Rows(start, ids, np.zeros((len(ids), 0), np.float32), labels)


def _checked(decode: Callable[[], _T], start: int) -> _T:
    """Run ``decode``; a data error's row numbers are given from the start of the table."""
    try:
        return decode()
    except DataError as exc:
        if start == 0:
            raise
        raise DataError(
            f"{exc} (counting rows from row {start} of the table)", code=exc.code
        ) from exc


def streamed_digest(
    source: ParquetSource, labels: np.ndarray | None, step: int, dtype: np.dtype[Any]
) -> str:
    """:func:`cvfl.train.binding.data_digest` of the table, reading ``step`` rows at a time.

    Every row is decoded and checked on the way, so a bad value anywhere in the table is named
    before training starts.
    """
    h = hashlib.sha256(b"cvfl/training-data/v1\0")
    h.update(json.dumps(list(source.feature_names)).encode())
    h.update(f"{dtype.str}{[source.rows, len(source.feature_names)]}\0".encode())
    for start, stop in source.ranges(step):
        part = source.read(start, stop)
        h.update(np.ascontiguousarray(part.features).data)
    if labels is None:
        h.update(b"none\0")
    else:
        plain = np.ascontiguousarray(labels)
        h.update(f"{plain.dtype.str}{list(plain.shape)}\0".encode())
        h.update(plain.data)
    return h.hexdigest()
