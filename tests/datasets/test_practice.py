"""The practice splits are untidy in the ways they promise, and deterministic."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cvfl.datasets.practice import ID_COLUMN, LABEL_COLUMN, PRACTICE, practice_split


@pytest.mark.parametrize("name", PRACTICE)
def test_split_is_untidy_as_promised(name: str) -> None:
    split = practice_split(name, seed=3)
    leader, follower = split.leader, split.follower
    assert LABEL_COLUMN in leader.column_names and LABEL_COLUMN not in follower.column_names
    for table in (leader, follower):
        assert pa.types.is_string(table.schema.field(ID_COLUMN).type)
        assert sum(table.column(c).null_count for c in table.column_names) > 0  # gaps
    shared = set(leader.column(ID_COLUMN).to_pylist()) & set(follower.column(ID_COLUMN).to_pylist())
    assert 0 < len(shared) < min(leader.num_rows, follower.num_rows)  # some rows one side only
    assert split.categorical["leader"] or split.categorical["follower"]
    for role, names in split.categorical.items():
        table = leader if role == "leader" else follower
        assert all(pa.types.is_string(table.schema.field(n).type) for n in names)
    biggest = max(
        float(pc.max(pc.abs(follower.column(c))).as_py() or 0.0)
        for c in follower.column_names
        if pa.types.is_floating(follower.schema.field(c).type)
    )
    assert biggest > 1e4  # a raw magnitude
    assert leader.column_names[2:] != follower.column_names[1:]


def test_tasks_and_labels() -> None:
    wine, diabetes, digits = (practice_split(n) for n in ("wine", "diabetes", "digits"))
    assert (wine.task, wine.num_classes) == ("multiclass", 3)
    assert set(wine.leader.column(LABEL_COLUMN).to_pylist()) == {0, 1, 2}
    assert diabetes.task == "regression"
    assert pa.types.is_floating(diabetes.leader.schema.field(LABEL_COLUMN).type)
    assert (digits.task, set(digits.leader.column(LABEL_COLUMN).to_pylist())) == (
        "binary",
        {0, 1},
    )


def test_deterministic_per_seed() -> None:
    first, again, other = (
        practice_split("wine", 1),
        practice_split("wine", 1),
        practice_split("wine", 2),
    )
    assert first.leader.equals(again.leader) and first.follower.equals(again.follower)
    assert not first.leader.equals(other.leader)
    ids = np.array(first.leader.column(ID_COLUMN).to_pylist())
    assert len(set(ids)) == len(ids)


def test_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="wine, diabetes, digits"):
        practice_split("iris")
