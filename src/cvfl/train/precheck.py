"""Checking a party's own input table against its job before anything moves (no PyTorch).

``cvfl align``, ``cvfl check`` and (through :func:`cvfl.train.party.load_party`) ``cvfl train``
call :func:`check_own_table` before the peer is contacted, so every data error names the user's
own file, column and row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cvfl.data.check import check_input
from cvfl.data.prep import unscaled_columns
from cvfl.data.tables import FeatureKind, TableSchema, validate
from cvfl.errors import DataError
from cvfl.models.spec import ModelSpec
from cvfl.sealing import KeyProvider
from cvfl.train.config import DataSection
from cvfl.train.inputs import input_arrow

UNSCALED_LIMIT = 1e3


@dataclass(frozen=True)
class InputSummary:
    """What a party's own table holds, as checked (counts and names only; never values).

    Attributes:
        path: The table checked.
        rows: Its rows.
        numeric: Columns used as numbers.
        categorical: Columns used as categories (or integer codes without ``[data.columns]``).
        ignored: Columns left out (``ignore``, or the ``default``).
        labels: Whether the label column was checked (the leader).
        warnings: Human-readable warnings (e.g. unscaled numeric columns).
    """

    path: Path
    rows: int
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ignored: tuple[str, ...]
    labels: bool
    warnings: tuple[str, ...] = field(default=())


def own_schema(data: DataSection, labels: bool, model: ModelSpec) -> TableSchema:
    """The schema of the party's own table (``labels``: the leader's training table)."""
    return TableSchema(
        kind=data.kind,
        id_column=data.id_column,
        label_column=data.label_column if labels else None,
        vocab=model.vocab,
        task=model.task,
        num_classes=model.num_classes,
    )


def check_own_table(
    data: DataSection, labels: bool, keys: KeyProvider | None, model: ModelSpec
) -> InputSummary:
    """Check ``[data] path`` against ``data``: rows, ids, columns and (``labels``) the labels.

    ``labels`` is true for the leader's training table (checked for ``model``'s task); a
    scoring table has none to check.

    Raises:
        DataError: naming the file, the column and the first bad row of that file.
        SealingError: a sealed table without a key, or one that fails to open.
    """
    path = data.path
    if not path.is_file():
        raise DataError(f"{path}: no such file", code="data.missing_file")
    schema = own_schema(data, labels, model)
    arrow = input_arrow(path, schema.id_column, keys)
    used = [schema.id_column] + ([schema.label_column] if schema.label_column else [])
    if data.columns is None:
        table = validate(arrow, path, schema)
        names = table.feature_names
        ignored = tuple(c for c in arrow.column_names if c not in (*names, *used))
        warnings: tuple[str, ...] = ()
        if data.kind is FeatureKind.NUMERIC:
            big = unscaled_columns(table.features, names, UNSCALED_LIMIT)
            warnings = (unscaled_warning(path, big),) if big else ()
            return InputSummary(
                path, table.rows, names, (), ignored, bool(schema.label_column), warnings
            )
        return InputSummary(path, table.rows, (), names, ignored, bool(schema.label_column))
    kinds = check_input(arrow, path, data.columns, schema)
    taken = {name for name, _ in kinds}
    return InputSummary(
        path,
        arrow.num_rows,
        tuple(n for n, k in kinds if k == "numeric"),
        tuple(n for n, k in kinds if k == "categorical"),
        tuple(c for c in arrow.column_names if c not in taken and c not in used),
        bool(schema.label_column),
    )


def check_own_rows(
    data: DataSection, labels: bool, keys: KeyProvider | None, model: ModelSpec
) -> None:
    """Check ``[data] path`` as :func:`check_own_table` does, one record batch at a time.

    ``cvfl align`` and ``cvfl train`` (with ``[psi]``) call it before the peer, so its memory
    does not grow with the table. A table with ``[data] columns`` or a sealed one is checked
    whole (:func:`check_own_table`).

    Raises:
        DataError: naming the file, the column and the first bad row of that file.
        SealingError: a sealed table without a key, or one that fails to open.
    """
    from cvfl.data.tables import validate_batches
    from cvfl.psi.gather import batch_rows
    from cvfl.psi.source import iter_row_batches
    from cvfl.sealing import is_sealed

    path = data.path
    if data.columns is not None or not path.is_file() or is_sealed(path):
        check_own_table(data, labels, keys, model)
        return
    schema = own_schema(data, labels, model)
    rows = batch_rows(path, data.id_column)
    validate_batches(iter_row_batches(path, data.id_column, rows), path, schema)


def unscaled_warning(path: Path, names: list[str]) -> str:
    """The one warning naming numeric columns used unscaled (never their values)."""
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (
        f"{path}: numeric columns used without preprocessing look unscaled (magnitude above "
        f"{UNSCALED_LIMIT:g}): {shown}; declare them in [data.columns] to standardise them"
    )
