"""The streamed reader's row source: any forward or backward range of any row-group layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvfl.data.tables import FeatureKind, TableSchema
from cvfl.train import stream_source
from cvfl.train.stream_source import ParquetSource

ROWS = 700


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One table in uneven row groups: a large one, small ones, a one-row one."""
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "id": [f"u{i}" for i in range(ROWS)],
            "a": pa.array(rng.integers(0, 9, ROWS), type=pa.int16()),
            "b": pa.array(rng.integers(0, 9, ROWS), type=pa.int16()),
        }
    )
    path = tmp_path_factory.mktemp("source") / "t.parquet"
    with pq.ParquetWriter(path, table.schema) as writer:
        for start, stop in ((0, 450), (450, 451), (451, 600), (600, ROWS)):
            writer.write_table(table.slice(start, stop - start), row_group_size=1000)
    return path


def _source(path: Path) -> ParquetSource:
    schema = TableSchema(kind=FeatureKind.CATEGORICAL, id_column="id", label_column=None, vocab=9)
    return ParquetSource(path, schema, None, sealed=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reads=st.lists(st.tuples(st.integers(0, ROWS - 1), st.integers(1, 300)), max_size=8))
def test_any_sequence_of_reads_gives_the_rows_asked_for(
    table_path: Path, reads: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_source, "READ_ROWS", 32)  # many batches per row group
    whole = pq.read_table(table_path)
    expected = np.stack([whole.column(c).to_numpy() for c in ("a", "b")], axis=1)
    source = _source(table_path)
    for start, length in reads:
        stop = min(ROWS, start + length)
        rows = source.read(start, stop)
        assert list(rows.ids) == [f"u{i}" for i in range(start, stop)]
        assert np.array_equal(rows.features, expected[start:stop])


def test_a_forward_pass_holds_only_the_batches_not_yet_passed(
    table_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_source, "READ_ROWS", 32)
    source = _source(table_path)
    held = []
    for start in range(0, 400, 50):  # through the 450-row group
        source.read(start, start + 50)
        held.append(sum(b.num_rows for b in source._local.cursor._held))
    assert max(held) <= 50 + 2 * 32  # the rows read and at most a batch either side
    source.read(400, 450)
    assert source._local.cursor is None  # at the group's end its reader is let go
