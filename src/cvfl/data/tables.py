"""Reading and validating a party's table (Parquet or CSV) into arrays the trainer can use.

Every problem is a :class:`~cvfl.errors.DataError` that names the file, the column and, where it
applies, the first offending row (row numbers count from 0, excluding a CSV header). Values are
never quoted in messages: they may be private.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cvfl.data.synth import ID_COLUMN
from cvfl.errors import DataError
from cvfl.fsutil import atomic_writer

if TYPE_CHECKING:
    from cvfl.data.prep import Preprocessing


class FeatureKind(StrEnum):
    """How feature columns are interpreted."""

    CATEGORICAL = "categorical"
    NUMERIC = "numeric"


@dataclass(frozen=True)
class TableSchema:
    """What a party's table must contain.

    Attributes:
        kind: Categorical (integer codes ``0..vocab-1``) or numeric (finite floats).
        id_column: Name of the example id column.
        label_column: Name of the label column, or None for a party without labels.
        vocab: Number of category values (categorical only).
        features: Feature column names in model order; empty means "every other column".
        task: What the labels are: ``binary`` (0/1), ``multiclass`` (integers
            ``0..num_classes-1``) or ``regression`` (finite numbers).
        num_classes: Classes of a multiclass task (0: any non-negative integer, the trainer
            infers the count).
    """

    kind: FeatureKind
    id_column: str = ID_COLUMN
    label_column: str | None = None
    vocab: int = 101
    features: tuple[str, ...] = ()
    task: str = "binary"
    num_classes: int = 0


@dataclass(frozen=True)
class PartyTable:
    """A validated table: ids (as strings), features (N, F) and optional labels (N,).

    ``prep`` is the party's fitted preprocessing when ``[data.columns]`` declared its columns
    (the features are then its float32 output); None for the plain numeric or integer-code
    tables.

    Labels are int64 class indices for a classification task and float32 for regression.
    """

    path: Path
    ids: tuple[str, ...]
    features: np.ndarray
    feature_names: tuple[str, ...]
    labels: np.ndarray | None
    prep: Preprocessing | None = None

    @property
    def rows(self) -> int:
        """Number of rows."""
        return len(self.ids)


def table_format(path: Path) -> str:
    """Return ``"parquet"`` or ``"csv"`` from the file name (``.sealed`` suffix ignored)."""
    name = path.name.removesuffix(".sealed")
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    raise DataError(
        f"{path}: unknown table format (expected a .parquet or .csv file name)",
        code="data.format",
    )


def load_arrow(path: Path) -> pa.Table:
    """Read a Parquet or CSV file into an Arrow table (errors name the file)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = table_format(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", code="data.missing_file")
    try:
        table = pq.read_table(path) if fmt == "parquet" else pacsv.read_csv(path)
        table.column_names  # noqa: B018 - names must decode (CSV headers may be any bytes)
        return table
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {exc}", code="data.unreadable") from exc


def write_arrow(table: pa.Table, path: Path) -> None:
    """Write a table atomically as Parquet or CSV, chosen by the file name."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = table_format(path)
    with atomic_writer(path, mode=0o600) as handle:
        if fmt == "parquet":
            pq.write_table(table, handle)
        else:
            pacsv.write_csv(table, handle)


def read_party_table(path: Path, schema: TableSchema) -> PartyTable:
    """Read and validate ``path`` against ``schema``."""
    return validate(load_arrow(path), path, schema)


FILL_ROWS = 65536
"""Rows converted at a time by :func:`validate` (bounds its transient copy)."""


def validate(
    table: pa.Table,
    path: Path,
    schema: TableSchema,
    *,
    first_row: int = 0,
    dtype: np.dtype[Any] | None = None,
) -> PartyTable:
    """Validate an Arrow table against ``schema`` and convert it to arrays.

    ``first_row``: the file's row number of the table's first row (a part of a larger file),
    added to the row numbers in refusals. ``dtype``: the features' type (default int64 codes or
    float32 values); a narrower one must hold every value (the caller knows the range).
    """
    if table.num_rows == 0:
        raise DataError(f"{path}: the table is empty (0 rows)", code="data.empty")
    _require_column(table, path, schema.id_column)
    ids = _ids(table, path, schema.id_column, first_row)
    names = schema.features or tuple(
        c for c in table.column_names if c not in (schema.id_column, schema.label_column)
    )
    if not names:
        raise DataError(f"{path}: no feature columns", code="data.no_features")
    _require_column(table, path, *names)
    features = np.empty((table.num_rows, len(names)), dtype=dtype or _dtype(schema.kind))
    for low in range(0, table.num_rows, FILL_ROWS):
        part = table.slice(low, FILL_ROWS)
        # stacked by column in their own (often narrow) type, then laid out by rows and widened
        # in one pass: writing column by column into a row-major array strides through it all
        stacked = np.stack(
            [_feature_column(part.column(n), path, n, schema, first_row + low) for n in names]
        )
        features[low : low + part.num_rows] = stacked.T
    labels = None
    if schema.label_column is not None:
        _require_column(table, path, schema.label_column)
        column = table.column(schema.label_column)
        labels = _labels(column, path, schema.label_column, schema, first_row)
    return PartyTable(path, ids, features, tuple(names), labels)


def _dtype(kind: FeatureKind) -> type[np.generic]:
    return np.int64 if kind is FeatureKind.CATEGORICAL else np.float32


def _require_column(table: pa.Table, path: Path, *names: str) -> None:
    """Refuse the table if it lacks any of ``names`` (naming the first missing one)."""
    present = set(table.column_names)  # one set: a list per lookup costs O(columns) each
    missing = next((name for name in names if name not in present), None)
    if missing is not None:
        raise DataError(f"{path}: missing column {missing!r}", code="data.missing_column")


def _first_row(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def validate_batches(batches: Iterable[pa.RecordBatch], path: Path, schema: TableSchema) -> int:
    """Validate a table one record batch at a time (bounded memory); return its row count.

    Raises:
        DataError: as :func:`validate`, with the file's row numbers; ``data.empty`` for no rows.
    """
    start = 0
    for batch in batches:
        if batch.num_rows:
            validate(pa.Table.from_batches([batch]), path, schema, first_row=start)
            start += batch.num_rows
    if start == 0:
        raise DataError(f"{path}: the table is empty (0 rows)", code="data.empty")
    return start


def _check_nulls(column: pa.ChunkedArray, path: Path, name: str, first_row: int = 0) -> None:
    if column.null_count:
        row = first_row + _first_row(pc.is_null(column, nan_is_null=True))
        raise DataError(f"{path}: column {name!r} row {row}: missing value", code="data.null")


def _ids(table: pa.Table, path: Path, name: str, first_row: int = 0) -> tuple[str, ...]:
    column = table.column(name)
    _check_nulls(column, path, name, first_row)
    if not (pa.types.is_string(column.type) or pa.types.is_integer(column.type)) and not (
        pa.types.is_large_string(column.type)
    ):
        raise DataError(
            f"{path}: column {name!r}: expected string or integer ids, seen {column.type}",
            code="data.type",
        )
    return tuple(str(v) for v in column.to_pylist())


def _feature_column(
    column: pa.ChunkedArray, path: Path, name: str, schema: TableSchema, first_row: int = 0
) -> np.ndarray:
    _check_nulls(column, path, name, first_row)
    if schema.kind is FeatureKind.CATEGORICAL:
        if not pa.types.is_integer(column.type):
            raise DataError(
                f"{path}: column {name!r}: expected integer category codes, seen {column.type}",
                code="data.type",
            )
        values: np.ndarray = np.asarray(column.to_numpy())  # its own integer type (narrow)
        if len(values) and (int(values.min()) < 0 or int(values.max()) >= schema.vocab):
            wide = values.astype(np.int64)
            row = first_row + int(np.argmax((wide < 0) | (wide >= schema.vocab)))
            raise DataError(
                f"{path}: column {name!r} row {row}: category out of range "
                f"(expected 0..{schema.vocab - 1})",
                code="data.range",
            )
        return values
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise DataError(
            f"{path}: column {name!r}: expected a number, seen {column.type}", code="data.type"
        )
    values = np.asarray(column.to_numpy(), dtype=np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        row = first_row + int(np.argmax(bad))
        raise DataError(
            f"{path}: column {name!r} row {row}: NaN or infinite value", code="data.nan"
        )
    return values


def _labels(
    column: pa.ChunkedArray, path: Path, name: str, schema: TableSchema, first_row: int = 0
) -> np.ndarray:
    _check_nulls(column, path, name, first_row)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataError(
            f"{path}: column {name!r}: expected {_LABEL_KINDS.get(schema.task, 'numeric')} "
            f"labels, seen {column.type}",
            code="data.type",
        )
    values: np.ndarray = np.asarray(column.to_numpy())
    if schema.task == "regression":
        return _regression_labels(values, path, name, first_row)
    if schema.task == "multiclass":
        return _class_labels(values, path, name, schema.num_classes, first_row)
    bad = (values != 0) & (values != 1)
    if bad.any():
        row = first_row + int(np.argmax(bad))
        raise DataError(
            f"{path}: column {name!r} row {row}: label must be 0 or 1", code="data.label"
        )
    return np.array(values, dtype=np.int64)  # a writable copy (Arrow buffers are read-only)


_LABEL_KINDS = {"binary": "0/1", "multiclass": "integer class", "regression": "numeric"}


def _class_labels(
    values: np.ndarray, path: Path, name: str, num_classes: int, first_row: int = 0
) -> np.ndarray:
    """Integer class labels ``0..num_classes-1`` (any non-negative integer when 0)."""
    numbers = values.astype(np.float64)
    invalid = ~np.isfinite(numbers) | (numbers != np.round(numbers)) | (numbers < 0)
    over = (numbers >= num_classes) & ~invalid if num_classes else np.zeros_like(invalid)
    if (invalid | over).any():
        row = int(np.argmax(invalid | over))
        problem = (
            "label must be a class index (a whole number >= 0)"
            if invalid[row]
            else f"label out of range (expected 0..{num_classes - 1})"
        )
        raise DataError(
            f"{path}: column {name!r} row {first_row + row}: {problem}", code="data.label"
        )
    return np.array(numbers, dtype=np.int64)


def _regression_labels(values: np.ndarray, path: Path, name: str, first_row: int = 0) -> np.ndarray:
    """Finite float32 targets; NaN, infinities and values beyond float32 are refused."""
    with np.errstate(over="ignore", invalid="ignore"):
        targets = np.array(values, dtype=np.float32)
    bad = ~np.isfinite(targets)
    if bad.any():
        row = first_row + int(np.argmax(bad))
        raise DataError(
            f"{path}: column {name!r} row {row}: label is NaN, infinite or beyond float32",
            code="data.label",
        )
    return targets
