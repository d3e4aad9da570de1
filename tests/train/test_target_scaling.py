"""A regression target is standardised on the training rows; metrics stay in its own units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.train import TrainResult, load_party
from cvfl.train.binding import training_binding
from cvfl.train.schedule import Schedule
from cvfl.train.tasks import TargetScale, fit_target
from tests.train.helpers import run_pair
from tests.train.task_tables import task_job

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=50))
def test_scaling_round_trips_and_centres(values: list[float]) -> None:
    targets = np.array(values)
    scale = TargetScale.fit(targets)
    assert scale.scale > 0 and np.isfinite(scale.center)
    scaled = scale.apply(targets)
    assert scaled.dtype == np.float32 and np.all(np.isfinite(scaled))
    np.testing.assert_allclose(scale.unscale(scaled), targets, rtol=1e-5, atol=1e-6 * scale.scale)
    assert TargetScale.from_json(scale.to_json()) == scale


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"center": 1.0},
        {"center": 0.0, "scale": 0.0},
        {"center": float("nan"), "scale": 1.0},
        {"center": 0.0, "scale": "2"},
        {"center": True, "scale": 1.0},
        {"center": 0.0, "scale": 1.0, "extra": 1},
    ],
)
def test_a_malformed_export_target_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="target"):
        TargetScale.from_json(bad)


def test_fitted_on_training_rows_only_and_only_for_regression(tmp_path: Path) -> None:
    lead, _ = task_job(tmp_path, "regression")
    party = load_party(lead)
    raw = load_party(task_job(tmp_path / "raw", "regression", model__target_scaling="none")[0])
    assert party.target is not None and raw.target is None
    assert raw.table.labels is not None and party.table.labels is not None
    assert isinstance(party.schedule, Schedule)  # the in-memory schedule
    expected = TargetScale.fit(raw.table.labels[party.schedule.train_rows])
    assert party.target == expected  # the held-out rows never shaped it
    np.testing.assert_allclose(party.table.labels, expected.apply(raw.table.labels))
    assert (
        fit_target(party.cfg.model.__class__(task="binary"), raw.table.labels, np.arange(3)) is None
    )
    # A rerun that changes the scaling is a change of configuration, named in the binding.
    assert "model.target_scaling" in training_binding(raw.cfg, raw.table).own
    assert "model.target_scaling" not in training_binding(party.cfg, party.table).own


def test_metrics_in_the_targets_units_and_loss_in_training_units(tmp_path: Path) -> None:
    lead, follow = task_job(tmp_path, "regression", train__epochs=3, train__lr=0.05)
    result, _ = run_pair(lead, follow)
    assert isinstance(result, TrainResult) and result.metrics is not None
    party = load_party(lead)
    assert party.target is not None
    last = result.history[-1]
    # val_loss is the held-out MSE of the scaled target; RMSE is in the target's units.
    assert last["val_loss"] == pytest.approx((last["val_rmse"] / party.target.scale) ** 2)
    assert result.metrics.get("rmse") == pytest.approx(last["val_rmse"])
