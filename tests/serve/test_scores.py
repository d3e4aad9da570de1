"""Scores tables: sealed by default, plaintext by name, either read back unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cvfl.errors import ConfigError, SealingError
from cvfl.sealing import new_key_file
from cvfl.serve import read_scores
from cvfl.serve.scores import score_columns, scores_store, scores_table, write_scores

logits_arrays = st.integers(1, 40).flatmap(
    lambda n: arrays(np.float32, (n, 2), elements=st.floats(-30, 30, width=32))
)


@settings(max_examples=30, deadline=None)
@given(logits_arrays, st.sampled_from(["parquet", "csv"]))
def test_scores_round_trip(
    tmp_path_factory: pytest.TempPathFactory, logits: np.ndarray, fmt: str
) -> None:
    folder = tmp_path_factory.mktemp("scores")
    keys = new_key_file(folder / "k.key")
    ids = tuple(f"0{i}" for i in range(len(logits)))
    table = scores_table("example_id", ids, torch.from_numpy(logits))
    written = write_scores(scores_store(keys, False), folder / f"s.{fmt}", table)
    assert written.name == f"s.{fmt}.sealed"
    back = read_scores(written, keys)
    assert back.column("example_id").to_pylist() == list(ids)  # ids stay text ("01", not 1)
    expected = torch.softmax(torch.from_numpy(logits).double(), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(back.column("score").to_numpy(), expected, rtol=1e-12, atol=1e-15)


def test_unsealed_scores_need_to_be_asked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        scores_store(None, False)
    assert "plaintext_scores" in info.value.message
    keys = new_key_file(tmp_path / "k.key")
    table = scores_table("example_id", ("a",), torch.zeros(1, 2))
    written = write_scores(scores_store(keys, False), tmp_path / "s.parquet", table)
    with pytest.raises(SealingError):
        read_scores(written, new_key_file(tmp_path / "other.key"))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.integers(3, 6).flatmap(
            lambda k: arrays(np.float32, (n, k), elements=st.floats(-30, 30, width=32))
        )
    ),
    st.sampled_from(["parquet", "csv"]),
)
def test_multiclass_scores_have_a_column_per_class(
    tmp_path_factory: pytest.TempPathFactory, logits: np.ndarray, fmt: str
) -> None:
    folder = tmp_path_factory.mktemp("scores")
    ids = tuple(f"0{i}" for i in range(len(logits)))
    table = scores_table("example_id", ids, torch.from_numpy(logits), "multiclass")
    written = write_scores(scores_store(None, True), folder / f"s.{fmt}", table)
    back = read_scores(written)
    k = logits.shape[1]
    assert back.column_names == ["example_id", *(f"p_{c}" for c in range(k)), "predicted"]
    probs = np.stack([back.column(f"p_{c}").to_numpy() for c in range(k)], axis=1)
    expected = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert back.column("predicted").to_pylist() == expected.argmax(axis=1).tolist()


@settings(max_examples=25, deadline=None)
@given(arrays(np.float32, st.integers(1, 30), elements=st.floats(-1e6, 1e6, width=32)))
def test_regression_scores_are_the_predicted_values(
    tmp_path_factory: pytest.TempPathFactory, values: np.ndarray
) -> None:
    folder = tmp_path_factory.mktemp("scores")
    ids = tuple(f"0{i}" for i in range(len(values)))
    outputs = torch.from_numpy(values.reshape(-1, 1))
    table = scores_table("example_id", ids, outputs, "regression")
    back = read_scores(write_scores(scores_store(None, True), folder / "s.parquet", table))
    assert back.column_names == ["example_id", "prediction"]
    np.testing.assert_array_equal(back.column("prediction").to_numpy(), values.astype(np.float64))


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([("binary", 2), ("multiclass", 4), ("regression", 1)]).flatmap(
        lambda task: st.tuples(
            st.just(task[0]),
            st.integers(1, 20).flatmap(
                lambda n: arrays(np.float32, (n, task[1]), elements=st.floats(-30, 30, width=32))
            ),
        )
    )
)
def test_score_columns_as_python_values_equal_the_table_rows(case: tuple[str, np.ndarray]) -> None:
    """``cvfl serve`` answers with ``score_columns``' values: the same as the table's rows."""
    task, logits = case
    ids = tuple(f"0{i}" for i in range(len(logits)))
    rows = scores_table("example_id", ids, torch.from_numpy(logits), task).to_pylist()
    columns = score_columns(torch.from_numpy(logits), task)
    for n, row in enumerate(rows):
        assert row.pop("example_id") == ids[n]
        answered = {name: column.tolist()[n] for name, column in columns.items()}
        assert answered == row
        assert [type(v) for v in answered.values()] == [type(v) for v in row.values()]
