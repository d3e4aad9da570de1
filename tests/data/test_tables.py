from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.data import (
    FeatureKind,
    SynthSpec,
    TableSchema,
    read_party_table,
    synthesize,
    write_arrow,
)
from cvfl.errors import DataError

CAT = TableSchema(FeatureKind.CATEGORICAL, label_column="label", vocab=101)


def _write(tmp_path: Path, columns: dict[str, list[object]], name: str = "t.parquet") -> Path:
    path = tmp_path / name
    write_arrow(pa.table(columns), path)
    return path


def test_synth_round_trip_parquet_and_csv(tmp_path: Path) -> None:
    tables = synthesize(SynthSpec(rows=50, slots=4, seed=1))
    for name in ("leader.parquet", "leader.csv"):
        write_arrow(tables.leader, tmp_path / name)
        table = read_party_table(tmp_path / name, CAT)
        assert table.rows == 50 and table.features.shape == (50, 4)
        assert table.labels is not None and set(np.unique(table.labels)) <= {0, 1}
        assert table.ids == tuple(tables.leader.column("example_id").to_pylist())


def test_synth_label_needs_both_parties() -> None:
    tables = synthesize(SynthSpec(rows=4000, slots=6, informative=3, seed=5))
    assert "label" not in tables.follower.column_names
    labels = tables.leader.column("label").to_numpy()
    assert 0.35 < labels.mean() < 0.65
    # Each party's informative slots shift the label rate by value: both sides carry signal.
    for table, prefix in ((tables.leader, "l"), (tables.follower, "f")):
        codes = table.column(f"{prefix}0").to_numpy()
        rates = [labels[codes == v].mean() for v in range(101) if (codes == v).sum() > 20]
        assert max(rates) - min(rates) > 0.2


def test_partial_overlap_and_shuffle() -> None:
    tables = synthesize(SynthSpec(rows=1000, slots=2, overlap=0.8, shuffle=True, seed=2))
    lead = set(tables.leader.column("example_id").to_pylist())
    follow = set(tables.follower.column("example_id").to_pylist())
    assert len(lead & follow) == 800
    assert len(lead) == len(follow) == 900


@pytest.mark.parametrize(
    ("columns", "needle"),
    [
        ({"example_id": ["a"], "l0": [1]}, "missing column 'label'"),
        ({"label": [1], "l0": [1]}, "missing column 'example_id'"),
        ({"example_id": ["a", "b"], "l0": [1, 101], "label": [0, 1]}, "column 'l0' row 1"),
        ({"example_id": ["a", "b"], "l0": [1, -1], "label": [0, 1]}, "out of range"),
        ({"example_id": ["a"], "l0": [1.5], "label": [0]}, "expected integer category codes"),
        ({"example_id": ["a", "b"], "l0": [1, None], "label": [0, 1]}, "row 1: missing value"),
        ({"example_id": ["a", "b"], "l0": [1, 2], "label": [0, 2]}, "label must be 0 or 1"),
        ({"example_id": [1.5], "l0": [1], "label": [0]}, "expected string or integer ids"),
    ],
)
def test_malformed_tables_name_file_column_row(
    tmp_path: Path, columns: dict[str, list[object]], needle: str
) -> None:
    path = _write(tmp_path, columns)
    with pytest.raises(DataError) as info:
        read_party_table(path, CAT)
    assert needle in info.value.message
    assert str(path) in info.value.message


def test_nan_in_numeric_column(tmp_path: Path) -> None:
    path = _write(tmp_path, {"example_id": ["a", "b", "c"], "x": [0.5, 1.0, float("nan")]})
    with pytest.raises(DataError, match=r"column 'x' row 2"):
        read_party_table(path, TableSchema(FeatureKind.NUMERIC))


def test_empty_and_missing_and_unknown_format(tmp_path: Path) -> None:
    empty = _write(
        tmp_path, {"example_id": pa.array([], pa.string()), "l0": pa.array([], pa.int16())}
    )
    with pytest.raises(DataError, match="empty"):
        read_party_table(empty, CAT)
    with pytest.raises(DataError, match="no such file"):
        read_party_table(tmp_path / "nope.parquet", CAT)
    with pytest.raises(DataError, match="unknown table format"):
        read_party_table(tmp_path / "t.xlsx", CAT)
    garbage = tmp_path / "g.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read"):
        read_party_table(garbage, CAT)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_reader_on_random_bytes_only_raises_data_error(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for name in ("r.parquet", "r.csv"):
            path = Path(folder) / name
            path.write_bytes(data)
            with contextlib.suppress(DataError):
                read_party_table(path, CAT)
