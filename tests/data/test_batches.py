"""Checking a table one record batch at a time refuses what the whole-table check refuses."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.data import FeatureKind, TableSchema
from cvfl.data.tables import validate, validate_batches
from cvfl.errors import DataError

CAT = TableSchema(FeatureKind.CATEGORICAL, label_column="label", vocab=101)
PATH = Path("t.parquet")
FLAWS = {
    "null": ("l0", None),
    "range": ("l0", 101),
    "negative": ("l0", -1),
    "label": ("label", 2),
    "id": ("example_id", None),
}


def _table(rows: int, flaw: str, at: int) -> pa.Table:
    columns: dict[str, list[object]] = {
        "example_id": [f"u{i}" for i in range(rows)],
        "l0": [i % 101 for i in range(rows)],
        "label": [i % 2 for i in range(rows)],
    }
    name, value = FLAWS[flaw]
    columns[name][at] = value
    return pa.table(columns)


def _message(fn: object) -> str:
    with pytest.raises(DataError) as info:
        fn()  # type: ignore[operator]
    return info.value.message


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 60),
    batch=st.integers(1, 25),
    flaw=st.sampled_from(sorted(FLAWS)),
    data=st.data(),
)
def test_batches_refuse_as_the_whole_table(
    rows: int, batch: int, flaw: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, rows - 1))
    table = _table(rows, flaw, at)
    whole = _message(lambda: validate(table, PATH, CAT))
    batched = _message(lambda: validate_batches(table.to_batches(max_chunksize=batch), PATH, CAT))
    assert batched == whole
    assert f"row {at}" in batched


def test_batches_count_rows_and_refuse_an_empty_table() -> None:
    table = _table(30, "null", 0).slice(1)
    assert validate_batches(table.to_batches(max_chunksize=7), PATH, CAT) == 29
    assert "empty" in _message(lambda: validate_batches(table.slice(0, 0).to_batches(), PATH, CAT))
