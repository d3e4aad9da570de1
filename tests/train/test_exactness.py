"""Split training over the bridge equals centralized training of the same model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from cvfl.data.tables import PartyTable
from cvfl.models.export import load_half
from cvfl.train import TrainResult, load_party, train_centralized
from cvfl.train.config import JobConfig
from cvfl.train.party import features
from tests.conftest import keys_of
from tests.train.helpers import run_pair


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_split_equals_centralized(
    small_job: Callable[..., tuple[JobConfig, JobConfig]], optimizer: str
) -> None:
    leader_cfg, follower_cfg = small_job(train__optimizer=optimizer, train__lr=0.05)
    lead, follow = run_pair(leader_cfg, follower_cfg)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    assert lead.steps == follow.steps > 0

    leader, follower = load_party(leader_cfg), load_party(follower_cfg)
    combined, central = train_centralized(leader, follower)
    assert central.steps == lead.steps

    assert lead.export is not None and follow.export is not None
    assert lead.export.name == "leader.safetensors.sealed"
    split_leader = load_half(lead.export, keys_of(leader_cfg)).tensors
    split_follower = load_half(follow.export, keys_of(follower_cfg)).tensors
    for name, value in combined.leader.state_dict().items():
        torch.testing.assert_close(split_leader[name], value, atol=1e-5, rtol=0)
    for name, value in combined.follower.state_dict().items():
        torch.testing.assert_close(split_follower[name], value, atol=1e-5, rtol=0)

    # Held-out logits of the exported halves equal the centralized model's.
    rows = leader.schedule.holdout_rows
    assert isinstance(leader.table, PartyTable) and isinstance(follower.table, PartyTable)
    leader.model.load_state_dict(split_leader)
    follower.model.load_state_dict(split_follower)
    with torch.no_grad():
        split_logits = leader.model(
            features(leader.table, rows), follower.model(features(follower.table, rows))
        )
        central_logits = combined(features(leader.table, rows), features(follower.table, rows))
    torch.testing.assert_close(split_logits, central_logits, atol=1e-5, rtol=0)
    assert lead.metrics is not None and central.metrics is not None
    assert abs(lead.metrics.auc - central.metrics.auc) < 1e-6
    # Training moved the parameters: the comparison is not between two untouched models.
    untouched = load_party(leader_cfg).model.state_dict()
    assert any(not torch.equal(untouched[k], v) for k, v in split_leader.items())
