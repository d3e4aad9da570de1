"""The leader's step split around the follower's gives the one-pass step's gradients exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvfl.models import LeaderHalf, ModelSpec, build_leader
from cvfl.train.towers import OwnTower, splits


def _leader(top: tuple[int, ...]) -> LeaderHalf:
    spec = ModelSpec(
        kind="widedeep", slots=6, vocab=7, leader_hidden=(16, 8), leader_hidden_top=top, cut_width=5
    )
    model = build_leader(spec, 6, seed=3)
    assert isinstance(model, LeaderHalf)
    return model


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("top", [(), (4,)])
def test_split_step_equals_one_backward_pass(top: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    codes = torch.randint(0, 7, (9, 6))
    act = torch.randn(9, 5)
    labels = torch.randint(0, 2, (9,))
    loss_of = nn.CrossEntropyLoss(reduction="sum")

    whole, parts = _leader(top), _leader(top)
    act_whole = act.clone().requires_grad_(True)
    loss_of(whole(codes, act_whole), labels).backward()

    tower = OwnTower.run(parts, codes)
    act_parts = act.clone().requires_grad_(True)
    loss = loss_of(tower.logits(act_parts), labels)
    sent = tower.top_backward(loss, act_parts)
    assert act_whole.grad is not None
    assert torch.equal(sent, act_whole.grad)  # the gradient sent is the one-pass gradient
    top_only = _grads(parts)
    assert top_only and all(name.startswith("top.") for name in top_only)  # the tower waits
    tower.finish()
    expected, seen = _grads(whole), _grads(parts)
    assert expected.keys() == seen.keys()
    for name, grad in expected.items():
        assert torch.equal(seen[name], grad), name


def test_only_the_built_in_half_with_one_worker_splits() -> None:
    model = _leader(())
    assert splits(model, 1)
    assert not splits(model, 2)  # DDP's gradient hooks expect one backward pass
    assert not splits(nn.Linear(3, 2), 1)  # a custom leader: one pass


def test_a_frozen_tower_gets_no_gradient_and_the_top_still_learns() -> None:
    model = _leader(())
    for param in [*model.encoder.parameters(), *model.bottom.parameters()]:
        param.requires_grad_(False)
    codes, act = torch.randint(0, 7, (4, 6)), torch.randn(4, 5, requires_grad=True)
    tower = OwnTower.run(model, codes)
    loss = nn.CrossEntropyLoss()(tower.logits(act), torch.tensor([0, 1, 1, 0]))
    sent = tower.top_backward(loss, act)
    tower.finish()
    assert sent.shape == act.shape
    assert set(_grads(model)) == {"top.weight", "top.bias"}
