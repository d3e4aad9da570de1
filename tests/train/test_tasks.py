"""Multiclass and regression jobs: split training equals centralized training for every task."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from cvfl.data.tables import PartyTable
from cvfl.errors import ConfigError
from cvfl.models.export import load_half
from cvfl.train import TrainResult, load_party, train_centralized, train_leader_only
from cvfl.train.binding import training_binding
from cvfl.train.party import features
from tests.conftest import keys_of
from tests.train.helpers import run_pair
from tests.train.task_tables import task_job

CASES = [
    ("multiclass", {}),
    ("regression", {"model__regression_loss": "mse"}),
    ("regression", {"model__regression_loss": "huber"}),
]


@pytest.mark.parametrize(("task", "extra"), CASES)
def test_split_equals_centralized_per_task(
    tmp_path: Path, task: str, extra: dict[str, str]
) -> None:
    leader_cfg, follower_cfg = task_job(tmp_path, task, train__lr=0.05, **extra)
    lead, follow = run_pair(leader_cfg, follower_cfg)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    leader, follower = load_party(leader_cfg), load_party(follower_cfg)
    combined, central = train_centralized(leader, follower)
    assert central.steps == lead.steps > 0

    assert lead.export is not None and follow.export is not None
    split_leader = load_half(lead.export, keys_of(leader_cfg)).tensors
    split_follower = load_half(follow.export, keys_of(follower_cfg)).tensors
    for name, value in combined.leader.state_dict().items():
        torch.testing.assert_close(split_leader[name], value, atol=1e-5, rtol=0)
    for name, value in combined.follower.state_dict().items():
        torch.testing.assert_close(split_follower[name], value, atol=1e-5, rtol=0)
    rows = leader.schedule.holdout_rows
    assert isinstance(leader.table, PartyTable) and isinstance(follower.table, PartyTable)
    with torch.no_grad():
        outputs = combined(features(leader.table, rows), features(follower.table, rows))
    assert outputs.shape == (len(rows), 3 if task == "multiclass" else 1)

    assert lead.metrics is not None and central.metrics is not None
    assert lead.metrics.task == central.metrics.task == task
    for name, value in central.metrics.as_dict().items():
        assert lead.metrics.get(name) == pytest.approx(value, abs=1e-5), name
    record = lead.history[-1]
    assert record["val_" + lead.metrics.primary_name] == pytest.approx(lead.metrics.primary)
    untouched = load_party(leader_cfg).model.state_dict()
    assert any(not torch.equal(untouched[k], v) for k, v in split_leader.items())


def test_multiclass_infers_classes_and_binds_them(tmp_path: Path) -> None:
    leader_cfg, follower_cfg = task_job(tmp_path, "multiclass")
    leader = load_party(leader_cfg)
    assert leader.cfg.model.num_classes == 3
    assert leader.table.labels is not None and leader.table.labels.dtype == "int64"
    fields = leader.binding.own
    assert fields["model.task"] == "multiclass" and fields["model.num_classes"] == 3
    # The follower's half and binding do not depend on the task.
    follower = load_party(follower_cfg)
    assert "model.task" not in follower.binding.own
    lonely = train_leader_only(leader)
    assert lonely.metrics is not None and set(lonely.metrics.as_dict()) == {
        "macro_auc",
        "accuracy",
        "macro_f1",
        "log_loss",
    }


def test_binary_binding_is_unchanged(tmp_path: Path) -> None:
    """A binary job binds no task fields: checkpoints of earlier versions stay resumable."""
    leader_cfg, _ = task_job(tmp_path, "binary")
    leader = load_party(leader_cfg)
    binding = training_binding(leader.cfg, leader.table)
    assert not [k for k in binding.fields if "task" in k or "num_classes" in k or "regression" in k]


def test_regression_labels_are_float32(tmp_path: Path) -> None:
    leader_cfg, _ = task_job(tmp_path, "regression")
    leader = load_party(leader_cfg)
    assert leader.table.labels is not None and leader.table.labels.dtype == "float32"
    assert leader.binding.own["model.regression_loss"] == "mse"


def test_rerun_with_another_regression_loss_refuses_the_checkpoints(tmp_path: Path) -> None:
    leader_cfg, follower_cfg = task_job(tmp_path, "regression", train__checkpoint_every=4)
    lead, follow = run_pair(leader_cfg, follower_cfg)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    changed = dataclasses.replace(
        leader_cfg, model=dataclasses.replace(leader_cfg.model, regression_loss="huber")
    )
    again, _ = run_pair(changed, follower_cfg)
    assert isinstance(again, ConfigError), again
    assert again.code == "config.checkpoint_changed"
    assert "model.regression_loss: checkpoint mse, job huber" in again.message
