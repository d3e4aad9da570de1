"""Task settings in the strict loader, and the metrics of each task against known values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import ConfigError
from cvfl.models.spec import ModelSpec
from cvfl.train.config import job_from_mapping
from cvfl.train.metrics import Metrics, better, task_metrics
from tests.conftest import job_tables


def _load(tmp_path: Path, **overrides: Any) -> None:
    raw = job_tables(tmp_path, tmp_path / "t.parquet", "leader", **overrides)
    job_from_mapping(raw, tmp_path / "job.toml")


@pytest.mark.parametrize(
    ("overrides", "code", "needle"),
    [
        ({"model__task": "ternary"}, "config.value", "[model] task"),
        ({"model__task": 3}, "config.value", "[model] task"),
        ({"model__num_classes": -1}, "config.range", "[model] num_classes"),
        ({"model__num_classes": "3"}, "config.type", "[model] num_classes"),
        ({"model__num_classes": 3}, "config.model", "0 or 2 for task = 'binary'"),
        ({"model__task": "multiclass", "model__num_classes": 1}, "config.model", "at least 2"),
        ({"model__task": "regression", "model__num_classes": 4}, "config.model", "unused"),
        ({"model__regression_loss": "l1"}, "config.value", "[model] regression_loss"),
        ({"train__early_stopping_metric": "rmse"}, "config.train", "one of auc"),
        (
            {"model__task": "regression", "train__early_stopping_metric": "auc"},
            "config.train",
            "one of rmse, mae, r2",
        ),
        ({"train__early_stopping_patience": 0}, "config.range", "early_stopping_patience"),
        (
            {"model__task": "multiclass", "privacy__defence": "marvell"},
            "config.privacy",
            "not marvell",
        ),
        (
            {"model__task": "regression", "privacy__label_epsilon": 1.0},
            "config.privacy",
            "label_epsilon",
        ),
    ],
)
def test_loader_refuses_bad_task_settings(
    tmp_path: Path, overrides: dict[str, Any], code: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, **overrides)
    assert info.value.code == code
    assert needle in info.value.message


def test_loader_accepts_each_task(tmp_path: Path) -> None:
    _load(tmp_path, model__task="multiclass", model__num_classes=5)
    _load(tmp_path, model__task="regression", model__regression_loss="huber")
    _load(tmp_path, train__early_stopping_metric="log_loss", train__early_stopping_patience=2)
    assert ModelSpec(task="multiclass", num_classes=5).output_width == 5
    assert ModelSpec(task="regression").output_width == 1
    assert ModelSpec().output_width == 2


def test_binary_metrics_known_values() -> None:
    labels = np.array([0, 0, 1, 1])
    logits = np.stack([np.zeros(4), np.array([0.1, 0.4, 0.35, 0.8])], axis=1)
    m = task_metrics("binary", labels, logits)
    assert m.primary_name == "auc" and m.auc == pytest.approx(0.75)
    probs = 1 / (1 + np.exp(-logits[:, 1]))
    expected = -np.mean(np.log(np.where(labels == 1, probs, 1 - probs)))
    assert m.log_loss == pytest.approx(expected, abs=1e-12)
    assert m.accuracy == pytest.approx(0.5)


def test_multiclass_metrics_known_values() -> None:
    labels = np.array([0, 1, 2, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.15, 0.75], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]])
    m = task_metrics("multiclass", labels, np.log(probs))
    assert m.accuracy == pytest.approx(0.75)
    assert m.get("macro_f1") == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m.log_loss == pytest.approx(-np.mean(np.log([0.8, 0.15, 0.7, 0.7])))
    # One vs rest: class 0 is ranked perfectly, class 1 in 3 of 4 pairs, class 2 in 2 of 3.
    assert m.get("macro_auc") == pytest.approx((1 + 0.75 + 2 / 3) / 3)
    assert m.primary_name == "macro_auc"


def test_multiclass_macro_auc_skips_absent_classes() -> None:
    m = task_metrics("multiclass", np.array([0, 0]), np.zeros((2, 3)))
    assert math.isnan(m.get("macro_auc")) and m.accuracy == 1.0


def test_regression_metrics_known_values() -> None:
    m = task_metrics("regression", np.array([1.0, 2, 3, 4]), np.array([[1.0], [2], [3], [6]]))
    assert m.get("rmse") == pytest.approx(1.0)
    assert m.get("mae") == pytest.approx(0.5)
    assert m.get("r2") == pytest.approx(0.2)
    assert m.primary_name == "rmse" and m.loss == pytest.approx(1.0)
    assert math.isnan(m.auc)


def test_metrics_read_back_and_direction() -> None:
    m = Metrics.from_json("regression", {"rmse": 0.5, "mae": 0.25, "r2": 0.9, "extra": 1})
    assert m.as_dict() == {"rmse": 0.5, "mae": 0.25, "r2": 0.9}
    assert better("rmse", 0.4, 0.5) and not better("rmse", 0.6, 0.5)
    assert better("auc", 0.9, 0.8) and not better("auc", math.nan, 0.8)
    assert better("r2", 0.1, math.nan)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=2, max_size=40))
def test_regression_rmse_matches_its_definition(values: list[float]) -> None:
    truth = np.array(values)
    predicted = truth[::-1].copy()
    m = task_metrics("regression", truth, predicted.reshape(-1, 1))
    assert m.get("rmse") == pytest.approx(math.sqrt(np.mean((truth - predicted) ** 2)), abs=1e-9)
    assert m.get("mae") == pytest.approx(np.mean(np.abs(truth - predicted)), abs=1e-9)
