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
    """A Parquet training table read by row ranges (one open file per thread)."""

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
        """The feature columns, in model order."""
        return self.schema.features

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

    def read(self, start: int, stop: int, *, labels: bool = False, ids_only: bool = False) -> Rows:
        """Decode and check rows ``[start, stop)`` (every row group they touch is read).

        Args:
            start: First row.
            stop: Row after the last.
            labels: Also decode the label column (the leader).
            ids_only: Decode only the ids (and labels when asked), no features.
        """
        columns = [self.schema.id_column]
        if not ids_only:
            columns += list(self.feature_names)
        label = self.schema.label_column if labels else None
        if label is not None:
            columns.append(label)
        first = int(np.searchsorted(self.group_starts, start, side="right")) - 1
        last = int(np.searchsorted(self.group_starts, stop, side="left"))
        parts = [self._group(g, columns) for g in range(first, last)]
        table = pa.concat_tables(parts).slice(start - int(self.group_starts[first]), stop - start)
        schema = replace(self.schema, label_column=label)
        if ids_only:
            return _checked(lambda: _ids_and_labels(table, self.path, schema, start), start)
        decoded = _checked(lambda: validate(table, self.path, schema), start)
        return Rows(start, decoded.ids, decoded.features, decoded.labels)

    def _group(self, index: int, columns: list[str]) -> pa.Table:
        """Row group ``index``, decoded.

        Each thread keeps the last group it decoded, so consecutive reads within a large row
        group decode it once.
        """
        key = (index, tuple(columns))
        cached: tuple[tuple[int, tuple[str, ...]], pa.Table] | None = getattr(
            self._local, "group", None
        )
        if cached is not None and cached[0] == key:
            return cached[1]
        self._local.group = None  # the previous group is freed before the next is decoded
        table = self._decode(index, columns)
        self._local.group = (key, table)
        return table

    def _decode(self, index: int, columns: list[str]) -> pa.Table:
        try:
            return self.file().read_row_group(index, columns=columns)
        except SealingError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            if isinstance(exc.__context__, SealingError):  # raised inside Arrow's read call
                raise exc.__context__ from None
            raise DataError(
                f"{self.path}: cannot read row group {index} as parquet: {exc}",
                code="data.unreadable",
            ) from exc

    def ranges(self, step: int) -> Iterator[tuple[int, int]]:
        """Consecutive row ranges of at most ``step`` rows that cover the table."""
        for start in range(0, self.rows, step):
            yield start, min(start + step, self.rows)


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
