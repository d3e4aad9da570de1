"""Checking a party's own table against its ``[data.columns]`` before anything moves.

Each problem is a :class:`~cvfl.errors.DataError` naming the file, the column and, where it
applies, the first offending row of *that file* (rows count from 0, a CSV header excluded), as in
:mod:`cvfl.data.tables`. Values are never quoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cvfl.data.columns import ColumnsSpec
from cvfl.data.prep import Preprocessing, fit, numeric_values
from cvfl.data.tables import PartyTable, TableSchema, _ids, _labels, _require_column
from cvfl.errors import DataError

Kinds = list[tuple[str, str]]
# A number, or what a CSV reader takes for a missing cell: cells that match are not the problem.
_NUMBER = (
    r"^\s*([+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)"
    r"|na|n/a|#n/a|null|<na>|none)?\s*$"
)


def resolve_kinds(table: pa.Table, path: Path, spec: ColumnsSpec, exclude: Sequence[str]) -> Kinds:
    """The (name, kind) of every column the party uses, in the table's order.

    Declared columns must be present (``ignore`` ones need not be); undeclared columns take
    ``default`` (``auto``: numbers numeric, anything else categorical).

    Raises:
        DataError: ``data.missing_column`` or ``data.no_features``, naming the file.
    """
    for name, declared in spec.columns:
        if declared.kind != "ignore" and name not in table.column_names and name not in exclude:
            raise DataError(
                f"{path}: missing column {name!r} (declared {declared.kind} in [data.columns])",
                code="data.missing_column",
            )
    kinds: Kinds = []
    for name in table.column_names:
        if name in exclude:
            continue
        rule = spec.rule(name)
        kind = rule.kind if rule else spec.default
        if kind == "auto":
            kind = "numeric" if _is_number(table.column(name).type) else "categorical"
        if kind != "ignore":
            kinds.append((name, kind))
    if not kinds:
        raise DataError(f"{path}: no feature columns", code="data.no_features")
    return kinds


def state_kinds(state: Preprocessing) -> Kinds:
    """The (name, kind) of the columns a fitted preprocessing reads."""
    return [(s.name, "numeric") for s in state.numeric] + [
        (s.name, "categorical") for s in state.categorical
    ]


def check_columns(table: pa.Table, path: Path, kinds: Kinds) -> None:
    """Every used column is present and holds what its kind needs.

    Numeric columns hold numbers (missing cells are allowed, infinite ones are not);
    categorical columns hold text, integers, booleans or numbers.

    Raises:
        DataError: ``data.missing_column``, ``data.type`` or ``data.nan``.
    """
    for name, kind in kinds:
        _require_column(table, path, name)
        column = table.column(name)
        if kind == "numeric":
            _check_numeric(column, path, name)
        elif not (_is_number(column.type) or _is_text(column.type)):
            raise DataError(
                f"{path}: column {name!r}: declared categorical, expected text, integers or "
                f"booleans, seen {column.type}",
                code="data.type",
            )


def _is_number(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    )


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or (pa.types.is_dictionary(kind) and _is_text(kind.value_type))
    )


def _check_numeric(column: pa.ChunkedArray, path: Path, name: str) -> None:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        ok = pc.match_substring_regex(column, _NUMBER, ignore_case=True).fill_null(True)
        row = int(pc.index(pc.invert(ok), True).as_py())
        what = "holds text"
        if row < 0:  # every cell reads as a number: numbers stored as text (e.g. Parquet)
            row, what = int(pc.index(pc.is_valid(column), True).as_py()), "holds numbers as text"
        raise DataError(
            f"{path}: column {name!r} row {max(row, 0)}: declared numeric, {what}",
            code="data.type",
        )
    if not (_is_number(column.type) or pa.types.is_boolean(column.type)):
        raise DataError(
            f"{path}: column {name!r}: declared numeric, expected numbers, seen {column.type}",
            code="data.type",
        )
    values = numeric_values(column)
    bad_rows = np.isinf(values)
    if bad_rows.any():
        raise DataError(
            f"{path}: column {name!r} row {int(np.argmax(bad_rows))}: infinite value",
            code="data.nan",
        )


def check_input(table: pa.Table, path: Path, spec: ColumnsSpec, schema: TableSchema) -> Kinds:
    """Check a whole table (rows, ids, declared columns, labels); return the used columns.

    Raises:
        DataError: naming ``path``, the column and the first bad row.
    """
    if table.num_rows == 0:
        raise DataError(f"{path}: the table is empty (0 rows)", code="data.empty")
    _require_column(table, path, schema.id_column)
    _ids(table, path, schema.id_column)
    no_empty_ids(table.column(schema.id_column), path, schema.id_column)
    exclude = [schema.id_column] + ([schema.label_column] if schema.label_column else [])
    kinds = resolve_kinds(table, path, spec, exclude)
    check_columns(table, path, kinds)
    if schema.label_column is not None:
        _require_column(table, path, schema.label_column)
        _labels(table.column(schema.label_column), path, schema.label_column, schema)
    return kinds


def no_empty_ids(column: pa.ChunkedArray, path: Path, name: str) -> None:
    """An empty text id (a CSV's empty cell) is a missing id."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        row = int(pc.index(pc.equal(column, ""), True).as_py())
        if row >= 0:
            raise DataError(f"{path}: column {name!r} row {row}: missing id", code="data.null")


def prepare_table(
    table: pa.Table, path: Path, spec: ColumnsSpec, schema: TableSchema, train_rows: np.ndarray
) -> PartyTable:
    """Check ``table``, fit the preprocessing on ``train_rows`` and transform every row."""
    kinds = check_input(table, path, spec, schema)
    state = fit(table.take(pa.array(train_rows, type=pa.int64())), kinds, spec)
    return apply_state(table, path, state, schema)


def apply_state(
    table: pa.Table, path: Path, state: Preprocessing, schema: TableSchema
) -> PartyTable:
    """A fitted preprocessing applied to a checked table (unseen categories go to bucket 0)."""
    if table.num_rows == 0:
        raise DataError(f"{path}: the table is empty (0 rows)", code="data.empty")
    _require_column(table, path, schema.id_column)
    ids = _ids(table, path, schema.id_column)
    check_columns(table, path, state_kinds(state))
    labels = None
    if schema.label_column is not None:
        _require_column(table, path, schema.label_column)
        labels = _labels(table.column(schema.label_column), path, schema.label_column, schema)
    features = state.transform(table)
    return PartyTable(path, ids, features, state.output_names, labels, state)
