"""Checking a party's own table: every message names the input file, the column and its row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from cvfl.data import load_arrow, write_arrow
from cvfl.data.check import check_input
from cvfl.data.columns import parse_columns
from cvfl.data.tables import FeatureKind, TableSchema
from cvfl.errors import DataError

LEADER = TableSchema(FeatureKind.NUMERIC, label_column="label")
HEADER = "example_id,color,income,label\n"
GOOD = ["a,red,100.5,0", "b,white,,1", "c,,2e5,0", "d,rose,7,1"]


def _check(
    tmp: Path, lines: list[str], columns: dict[str, object] | None = None, header: str = HEADER
) -> DataError:
    path = tmp / "mine.csv"
    path.write_text(header + "".join(line + "\n" for line in lines))
    spec = parse_columns(columns or {"color": "categorical", "income": "numeric"})
    with pytest.raises(DataError) as info:
        check_input(load_arrow(path), path, spec, LEADER)
    assert str(path) in info.value.message
    return info.value


def test_a_good_table_passes_with_its_kinds(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "".join(line + "\n" for line in GOOD))
    spec = parse_columns({"color": "categorical"})
    kinds = check_input(load_arrow(path), path, spec, LEADER)
    assert kinds == [("color", "categorical"), ("income", "numeric")]


def test_text_in_a_numeric_column_names_its_row(tmp_path: Path) -> None:
    lines = [*GOOD, "e,red,12,0", "f,red,lots,1", "g,red,3,0"]
    err = _check(tmp_path, lines)
    assert err.code == "data.type"
    assert "column 'income' row 5: declared numeric, holds text" in err.message


def test_text_declared_numeric_names_the_first_text_row(tmp_path: Path) -> None:
    err = _check(tmp_path, GOOD, {"color": "numeric"})
    assert "column 'color' row 0: declared numeric, holds text" in err.message


def test_an_infinite_value_names_its_row(tmp_path: Path) -> None:
    err = _check(tmp_path, [*GOOD, "e,red,inf,1"])
    assert err.code == "data.nan" and "column 'income' row 4: infinite value" in err.message


def test_a_declared_column_missing_from_the_table(tmp_path: Path) -> None:
    err = _check(tmp_path, GOOD, {"colour": "categorical"})
    assert err.code == "data.missing_column"
    assert "missing column 'colour' (declared categorical in [data.columns])" in err.message


def test_an_ignored_column_may_be_absent(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "".join(line + "\n" for line in GOOD))
    spec = parse_columns({"gone": "ignore", "color": "ignore"})
    assert check_input(load_arrow(path), path, spec, LEADER) == [("income", "numeric")]


def test_a_header_only_table_is_empty(tmp_path: Path) -> None:
    err = _check(tmp_path, [])
    assert err.code == "data.empty" and "the table is empty (0 rows)" in err.message


def test_a_missing_id_names_its_row(tmp_path: Path) -> None:
    err = _check(tmp_path, [*GOOD[:2], ",red,1,0"])
    assert err.code == "data.null" and "column 'example_id' row 2: missing id" in err.message


def test_the_id_column_must_be_there(tmp_path: Path) -> None:
    err = _check(tmp_path, ["red,1,0"], header="color,income,label\n")
    assert err.code == "data.missing_column" and "'example_id'" in err.message


def test_the_leaders_labels_are_checked(tmp_path: Path) -> None:
    err = _check(tmp_path, [*GOOD, "e,red,1,2"])
    assert err.code == "data.label" and "column 'label' row 4" in err.message


def test_only_ignored_columns_leave_no_features(tmp_path: Path) -> None:
    err = _check(tmp_path, GOOD, {"default": "ignore"})
    assert err.code == "data.no_features"


def test_numbers_stored_as_text_are_named(tmp_path: Path) -> None:
    path = tmp_path / "mine.parquet"
    write_arrow(pa.table({"example_id": ["a", "b"], "x": [None, "1.5"], "label": [0, 1]}), path)
    with pytest.raises(DataError) as info:
        check_input(load_arrow(path), path, parse_columns({"x": "numeric"}), LEADER)
    assert info.value.code == "data.type"
    assert (
        info.value.message == f"{path}: column 'x' row 1: declared numeric, holds numbers as text"
    )
