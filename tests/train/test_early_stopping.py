"""Early stopping: the leader stops after ``patience`` epochs without improvement and both
parties export the state of the best epoch, the same one, also when the job is run again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.models.export import ExportedHalf, load_half
from cvfl.models.nets import CombinedModel
from cvfl.train import TrainResult, load_party, train_centralized
from cvfl.train.config import JobConfig
from cvfl.train.early import decide
from cvfl.train.metrics import LOWER_IS_BETTER
from tests.conftest import keys_of
from tests.train.helpers import run_pair
from tests.train.task_tables import task_job


def _central_at(cfg: JobConfig, follower_cfg: JobConfig, steps: int) -> CombinedModel:
    """The centralized model trained for ``steps`` steps of the same schedule."""
    train = dataclasses.replace(cfg.train, max_steps=steps, early_stopping_metric="")
    follower_train = dataclasses.replace(follower_cfg.train, max_steps=steps)
    leader = load_party(dataclasses.replace(cfg, train=train))
    follower = load_party(dataclasses.replace(follower_cfg, train=follower_train))
    combined, result = train_centralized(leader, follower)
    assert result.steps == steps
    return combined


def _exports(
    lead: TrainResult, follow: TrainResult, cfgs: tuple[JobConfig, JobConfig]
) -> tuple[ExportedHalf, ExportedHalf]:
    assert lead.export is not None and follow.export is not None
    return (
        load_half(lead.export, keys_of(cfgs[0])),
        load_half(follow.export, keys_of(cfgs[1])),
    )


@pytest.mark.parametrize(
    ("task", "metric", "lr"), [("binary", "log_loss", 0.05), ("regression", "rmse", 0.1)]
)
def test_stops_and_both_export_the_best_epoch(
    tmp_path: Path, task: str, metric: str, lr: float
) -> None:
    # Learning rates at which these small tables overfit within 8 epochs (the regression
    # target is standardised, the default).
    cfgs = task_job(
        tmp_path,
        task,
        train__lr=lr,
        train__epochs=8,
        train__early_stopping_metric=metric,
        train__early_stopping_patience=1,
    )
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    total = load_party(cfgs[0]).schedule.total_steps
    assert lead.stopped_early and follow.stopped_early
    assert lead.steps == follow.steps < total  # both stopped at the same step
    assert 0 < lead.best_step == follow.best_step < lead.steps
    # Patience 1: the epoch after the best one was worse, and was the last trained.
    values = [h[f"val_{metric}"] for h in lead.history]
    best = next(i for i, h in enumerate(lead.history) if h["step"] == lead.best_step)
    assert best == len(values) - 2 and values[-1] >= values[best]
    assert lead.metrics is not None and lead.metrics.get(metric) == pytest.approx(values[best])
    assert lead.to_json()["early_stopping"] == {"best_step": lead.best_step, "stopped_early": True}

    # Both halves hold the best epoch's state: the centralized model trained that many steps.
    leader_half, follower_half = _exports(lead, follow, cfgs)
    assert leader_half.spec["steps"] == follower_half.spec["steps"] == lead.best_step
    combined = _central_at(*cfgs, lead.best_step)
    for name, value in combined.leader.state_dict().items():
        torch.testing.assert_close(leader_half.tensors[name], value, atol=1e-5, rtol=0)
    for name, value in combined.follower.state_dict().items():
        torch.testing.assert_close(follower_half.tensors[name], value, atol=1e-5, rtol=0)

    # Run again: both resume at the stopping epoch, hear the same decision, export the same.
    again_lead, again_follow = run_pair(*cfgs)
    assert isinstance(again_lead, TrainResult), again_lead
    assert isinstance(again_follow, TrainResult), again_follow
    assert again_lead.best_step == again_follow.best_step == lead.best_step
    assert again_lead.steps == lead.steps and again_lead.session_examples == 0
    assert again_lead.fingerprint == lead.fingerprint
    assert again_follow.fingerprint == follow.fingerprint


def test_without_early_stop_the_best_epoch_is_still_exported(tmp_path: Path) -> None:
    cfgs = task_job(
        tmp_path,
        "binary",
        train__lr=0.05,
        train__epochs=3,
        train__early_stopping_metric="auc",
        train__early_stopping_patience=5,
    )
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    assert not lead.stopped_early and not follow.stopped_early
    assert lead.steps == load_party(cfgs[0]).schedule.total_steps
    aucs = [h["val_auc"] for h in lead.history]
    assert lead.best_step == lead.history[aucs.index(max(aucs))]["step"] == follow.best_step
    leader_half, follower_half = _exports(lead, follow, cfgs)
    assert leader_half.spec["steps"] == follower_half.spec["steps"] == lead.best_step


def test_early_stopping_settings_are_shared_terms(tmp_path: Path) -> None:
    lead_cfg, follow_cfg = task_job(
        tmp_path, "binary", train__early_stopping_metric="auc", train__early_stopping_patience=2
    )
    other = dataclasses.replace(
        follow_cfg, train=dataclasses.replace(follow_cfg.train, early_stopping_patience=3)
    )
    lead, follow = run_pair(lead_cfg, other)
    assert isinstance(lead, Exception) and isinstance(follow, Exception)
    assert "early_stopping_patience" in str(lead) + str(follow)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=12),
    st.integers(1, 4),
    st.sampled_from(["auc", "rmse"]),
)
def test_decide_matches_its_definition(values: list[float], patience: int, metric: str) -> None:
    history = [{"step": 10 * (i + 1), f"val_{metric}": v} for i, v in enumerate(values)]
    decision = decide(metric, patience, history, last=False)
    pick = min if metric in LOWER_IS_BETTER else max
    best = values.index(pick(values))  # the first best epoch
    assert decision.step == history[-1]["step"]
    assert decision.best_step == history[best]["step"]
    assert decision.stop == (len(values) - 1 - best >= patience)
    assert decide(metric, patience, history, last=True).stop


def test_the_centralized_twin_stops_where_the_split_job_stops(tmp_path: Path) -> None:
    """`cvfl report`'s baselines follow the same rule: the same stop, best step and metrics."""
    cfgs = task_job(
        tmp_path,
        "binary",
        train__lr=0.05,
        train__epochs=8,
        train__early_stopping_metric="log_loss",
        train__early_stopping_patience=1,
    )
    lead, _ = run_pair(*cfgs)
    assert isinstance(lead, TrainResult) and lead.stopped_early and lead.metrics is not None
    combined, central = train_centralized(load_party(cfgs[0]), load_party(cfgs[1]))
    assert central.stopped_early and (central.steps, central.best_step) == (
        lead.steps,
        lead.best_step,
    )
    assert central.metrics is not None
    for name, value in lead.metrics.as_dict().items():
        assert central.metrics.get(name) == pytest.approx(value, abs=1e-5)
    assert lead.export is not None
    leader_half = load_half(lead.export, keys_of(cfgs[0]))
    for name, value in combined.leader.state_dict().items():  # it ends in the best state
        torch.testing.assert_close(leader_half.tensors[name], value, atol=1e-5, rtol=0)
