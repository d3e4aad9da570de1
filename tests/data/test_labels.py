"""Labels per task: 0/1, class indices 0..K-1, finite regression targets; errors name the row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.data import FeatureKind, TableSchema, read_party_table, write_arrow
from cvfl.errors import DataError


def _schema(task: str, num_classes: int = 0) -> TableSchema:
    return TableSchema(FeatureKind.NUMERIC, label_column="y", task=task, num_classes=num_classes)


def _read(tmp_path: Path, labels: pa.Array, schema: TableSchema) -> np.ndarray:
    n = len(labels)
    path = tmp_path / "t.parquet"
    table = pa.table({"example_id": [str(i) for i in range(n)], "x": [0.5] * n, "y": labels})
    write_arrow(table, path)
    out = read_party_table(path, schema).labels
    assert out is not None
    return out


def test_multiclass_labels_are_int64(tmp_path: Path) -> None:
    labels = _read(tmp_path, pa.array([0, 2, 1, 4]), _schema("multiclass"))
    assert labels.dtype == np.int64 and labels.tolist() == [0, 2, 1, 4]
    # Whole numbers stored as floats are class indices too.
    again = _read(tmp_path, pa.array([0.0, 3.0]), _schema("multiclass", 4))
    assert again.dtype == np.int64 and again.tolist() == [0, 3]


def test_multiclass_label_beyond_num_classes_names_row_and_range(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        _read(tmp_path, pa.array([0, 1, 2, 7, 1]), _schema("multiclass", 3))
    message = info.value.message
    assert info.value.code == "data.label"
    assert "column 'y' row 3" in message and "expected 0..2" in message
    assert "7" not in message.replace(str(tmp_path), "")  # the value itself is never quoted


@pytest.mark.parametrize(
    ("values", "row"),
    [([0, -1, 1], 1), ([0.0, 1.0, 1.5], 2)],
)
def test_multiclass_needs_whole_non_negative_labels(
    tmp_path: Path, values: list[float], row: int
) -> None:
    with pytest.raises(DataError, match=rf"column 'y' row {row}: label must be a class index"):
        _read(tmp_path, pa.array(values), _schema("multiclass"))


def test_regression_labels_are_float32(tmp_path: Path) -> None:
    labels = _read(tmp_path, pa.array([0.25, -3.5, 1e3]), _schema("regression"))
    assert labels.dtype == np.float32 and labels.tolist() == [0.25, -3.5, 1000.0]
    ints = _read(tmp_path, pa.array([1, 2]), _schema("regression"))
    assert ints.dtype == np.float32


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), 1e300])
def test_regression_refuses_non_finite_naming_the_row(tmp_path: Path, bad: float) -> None:
    with pytest.raises(DataError) as info:
        _read(tmp_path, pa.array([0.5, 1.5, bad]), _schema("regression"))
    assert info.value.code == "data.label" and "column 'y' row 2" in info.value.message
    assert "inf" not in info.value.message.replace("infinite", "")


def test_regression_refuses_nan_naming_the_row(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"column 'y' row 1: label is NaN"):
        _read(tmp_path, pa.array([0.5, float("nan")]), _schema("regression"))


def test_binary_stays_zero_one(tmp_path: Path) -> None:
    assert _read(tmp_path, pa.array([0, 1, 1]), _schema("binary")).dtype == np.int64
    with pytest.raises(DataError, match="label must be 0 or 1"):
        _read(tmp_path, pa.array([0, 2]), _schema("binary"))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-3, 12), min_size=1, max_size=30),
    st.integers(0, 10),
)
def test_class_labels_accepted_exactly_when_in_range(
    tmp_path_factory: pytest.TempPathFactory, values: list[int], classes: int
) -> None:
    folder = tmp_path_factory.mktemp("labels")
    schema = _schema("multiclass", classes)
    limit = classes or 10**9
    bad = [i for i, v in enumerate(values) if v < 0 or v >= limit]
    if bad:
        with pytest.raises(DataError, match=rf"row {bad[0]}:"):
            _read(folder, pa.array(values), schema)
    else:
        assert _read(folder, pa.array(values), schema).tolist() == values
