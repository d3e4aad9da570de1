"""``[data.columns]`` with the streamed reader: the fit, the rows read, and training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.data.check import check_input
from cvfl.data.columns import parse_columns
from cvfl.data.prep import fit
from cvfl.data.tables import FeatureKind, TableSchema
from cvfl.errors import DataError
from cvfl.models.export import load_half
from cvfl.sealing import write_sealed
from cvfl.train import TrainResult, load_party, train_centralized
from cvfl.train.config import JobConfig, job_from_mapping
from cvfl.train.stream import StreamTable, open_stream
from tests.conftest import job_tables, keys_of
from tests.data.mixed import LEADER_COLUMNS, mixed_tables, mlp_overrides
from tests.train.helpers import run_pair

STREAM: dict[str, Any] = {
    "data__reader": "stream",
    "data__block_rows": 40,
    "data__shuffle_blocks": 3,
}
SPLIT = ("job-1", 7, 0.25)


def _schema(label: str | None = "label") -> TableSchema:
    return TableSchema(kind=FeatureKind.NUMERIC, id_column="example_id", label_column=label)


def _regroup(path: Path, rows: int) -> pa.Table:
    """Rewrite ``path`` as Parquet in ``rows``-row groups; return the table."""
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=rows)
    return table


def _open(path: Path, columns: dict[str, Any], label: str | None = "label") -> StreamTable:
    spec = parse_columns(columns)
    return open_stream(
        path, _schema(label), None, sealed=None, split=SPLIT, block_rows=50, columns=spec
    )


def test_the_streamed_fit_is_the_in_memory_fit_on_the_same_training_rows(tmp_path: Path) -> None:
    leader, _ = mixed_tables(tmp_path, rows=300, fmt="parquet")
    table = _regroup(leader, 64)
    streamed = _open(leader, LEADER_COLUMNS)
    spec = parse_columns(LEADER_COLUMNS)
    kinds = check_input(table, leader, spec, _schema())
    train = pa.array(np.flatnonzero(~streamed.holdout), type=pa.int64())
    expected = fit(table.take(train), kinds, spec)
    assert streamed.prep == expected
    assert streamed.feature_names == expected.output_names
    rows = np.random.default_rng(2).permutation(table.num_rows)[:120]
    ids, features = streamed.take(rows, planned=False)
    assert ids == [table.column("example_id")[int(i)].as_py() for i in rows]
    assert np.array_equal(features, expected.transform(table)[rows])


@settings(max_examples=25)
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=8, max_size=60
    ),
    group=st.integers(1, 9),
    scaling=st.sampled_from(["standard", "robust", "quantile"]),
)
def test_any_numeric_column_fits_as_in_memory(
    tmp_path_factory: pytest.TempPathFactory, values: list[float | None], group: int, scaling: str
) -> None:
    path = tmp_path_factory.mktemp("fit") / "t.parquet"
    ids = [f"r{i}" for i in range(len(values))]
    table = pa.table({"example_id": ids, "x": pa.array(values, pa.float64())})
    pq.write_table(table, path, row_group_size=group)
    columns = {"x": {"kind": "numeric", "scaling": scaling}}
    try:
        streamed = _open(path, columns, label=None)
    except DataError as exc:  # every row held out, or no training value at all
        assert exc.code in ("data.empty", "data.null"), exc
        return
    train = pa.array(np.flatnonzero(~streamed.holdout), type=pa.int64())
    assert streamed.prep == fit(table.take(train), [("x", "numeric")], parse_columns(columns))


def test_a_bad_cell_anywhere_is_named_with_its_row(tmp_path: Path) -> None:
    leader, _ = mixed_tables(tmp_path, rows=200, fmt="parquet")
    table = pq.read_table(leader)
    ratio = table.column("ratio").to_pylist()
    ratio[157] = float("inf")
    bad = table.set_column(table.column_names.index("ratio"), "ratio", pa.array(ratio))
    pq.write_table(bad, leader, row_group_size=50)
    with pytest.raises(DataError) as caught:
        _open(leader, LEADER_COLUMNS)
    assert caught.value.code == "data.nan"
    assert "'ratio'" in caught.value.message and "157" in caught.value.message


def test_a_declared_column_the_table_lacks_is_refused(tmp_path: Path) -> None:
    leader, _ = mixed_tables(tmp_path, rows=100, fmt="parquet")
    with pytest.raises(DataError) as caught:
        _open(leader, LEADER_COLUMNS | {"tenure": "numeric"})
    assert caught.value.code == "data.missing_column" and "'tenure'" in caught.value.message


def test_an_empty_text_id_is_refused_before_training(tmp_path: Path) -> None:
    leader, _ = mixed_tables(tmp_path, rows=120, fmt="parquet")
    table = pq.read_table(leader)
    ids = table.column("example_id").to_pylist()
    ids[90] = ""
    table = table.set_column(0, "example_id", pa.array(ids))
    pq.write_table(table, leader, row_group_size=50)
    streamed = _open(leader, LEADER_COLUMNS)
    with pytest.raises(DataError) as caught:
        streamed.data_digest()  # the pass that checks every row before training
    assert caught.value.code == "data.null" and "row 90: missing id" in caught.value.message


def _jobs(tmp: Path, *, sealed: bool) -> tuple[JobConfig, JobConfig]:
    paths = mixed_tables(tmp, fmt="parquet")
    cfgs = []
    for role, path in zip(("leader", "follower"), paths, strict=True):
        raw = job_tables(tmp, path, role, **mlp_overrides(role), **STREAM, train__lr=0.05)
        cfg = job_from_mapping(raw, tmp / "job.toml")
        _regroup(path, 64)
        if sealed:
            write_sealed(path, path.read_bytes(), purpose="aligned-table", keys=keys_of(cfg))
        cfgs.append(cfg)
    return cfgs[0], cfgs[1]


@pytest.mark.parametrize("sealed", [False, True])
def test_streamed_training_on_mixed_tables_equals_its_centralized_twin(
    tmp_path: Path, sealed: bool
) -> None:
    cfgs = _jobs(tmp_path, sealed=sealed)
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    leader, follower = load_party(cfgs[0]), load_party(cfgs[1])
    assert isinstance(leader.table, StreamTable) and leader.table.prep is not None
    assert leader.table.prep.layout.cardinalities == (4, 17)  # 3 colours + OOV; 16 buckets + 0
    combined, central = train_centralized(leader, follower)
    assert central.steps == lead.steps == follow.steps == leader.schedule.total_steps > 0
    assert lead.export is not None and follow.export is not None
    split_leader = load_half(lead.export, keys_of(cfgs[0]))
    split_follower = load_half(follow.export, keys_of(cfgs[1]))
    for name, value in combined.leader.state_dict().items():
        torch.testing.assert_close(split_leader.tensors[name], value, atol=1e-5, rtol=0)
    for name, value in combined.follower.state_dict().items():
        torch.testing.assert_close(split_follower.tensors[name], value, atol=1e-5, rtol=0)
    assert split_leader.spec["preprocessing"] == leader.table.prep.to_json()
    assert lead.metrics is not None and central.metrics is not None
    assert abs(lead.metrics.auc - central.metrics.auc) < 1e-6
    assert lead.metrics.auc > 0.6  # it learned from both parties' prepared columns
