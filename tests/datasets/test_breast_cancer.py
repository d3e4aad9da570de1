"""The breast-cancer vertical split and per-party standardisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cvfl.datasets import breast_cancer_split, standardise
from cvfl.datasets.jobs import prepare_breast_cancer
from cvfl.train.config import load_job
from cvfl.train.schedule import Schedule


def test_split_as_fate_does() -> None:
    split = breast_cancer_split(seed=2024, holdout_fraction=0.2)
    assert split.leader.num_rows == split.follower.num_rows == 569
    assert split.leader.column_names[:3] == ["example_id", "label", "mean_radius"]
    assert len(split.leader.column_names) == 2 + 10
    assert len(split.follower.column_names) == 1 + 20
    assert "label" not in split.follower.column_names
    assert split.follower.column_names[1] == "radius_error"  # the 11th of the 30 features
    ids = split.leader.column("example_id").to_pylist()
    assert ids == split.follower.column("example_id").to_pylist() == [str(i) for i in range(569)]
    assert set(split.leader.column("label").to_pylist()) == {0, 1}
    schedule = Schedule(num_rows=569, holdout_fraction=0.2, seed=2024, batch_size=1, epochs=1)
    assert np.array_equal(split.holdout_rows, schedule.holdout_rows)
    values = np.column_stack([c.to_numpy() for c in split.follower.columns[1:]])
    train = values[schedule.train_rows]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)
    held = values[schedule.holdout_rows]
    assert not np.allclose(held.mean(axis=0), 0.0, atol=1e-5)  # held-out rows were not used


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(2, 30), st.integers(1, 5)), elements=st.floats(-1e6, 1e6)
    ),
    st.data(),
)
def test_standardise_uses_only_the_training_rows(values: np.ndarray, data: st.DataObject) -> None:
    n = values.shape[0]
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1))))
    out = standardise(values, rows)
    assert out.dtype == np.float32 and out.shape == values.shape and np.isfinite(out).all()
    changed = values.copy()
    others = np.setdiff1d(np.arange(n), rows)
    changed[others] += 1.0  # moving the other rows changes nothing for the training rows
    np.testing.assert_allclose(standardise(changed, rows)[rows], out[rows], rtol=1e-6, atol=1e-6)


def test_prepared_job_files_load(tmp_path: Path) -> None:
    prepare_breast_cancer(tmp_path, 50123, mr_enclave="00" * 32)
    for role in ("leader", "follower"):
        cfg = load_job(tmp_path / f"{role}.toml")
        assert cfg.model.kind == "mlp" and cfg.data.kind == "numeric"
        assert cfg.sealing is not None and cfg.peer.security == "ratls"
        assert (tmp_path / "data" / f"{role}-holdout.parquet").is_file()


def test_unknown_demo_dataset_is_refused(tmp_path: Path) -> None:
    import pytest

    from cvfl.cli.bcdemo import dataset_demo
    from cvfl.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        dataset_demo("iris", tmp_path)
    assert info.value.message == "--dataset: expected synthetic or breast-cancer, seen iris"
    assert dataset_demo("synthetic", tmp_path) is False
