"""``[model] leader_hidden_top``: the leader's top is no longer rank 1 by construction."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvfl.errors import ConfigError
from cvfl.models.factory import build_leader
from cvfl.models.nets import LeaderHalf
from cvfl.models.spec import ModelSpec


def _cut_gradient(spec: ModelSpec) -> torch.Tensor:
    leader = build_leader(spec, 6, seed=1)
    torch.manual_seed(0)
    act = torch.randn(32, spec.cut_width, requires_grad=True)
    labels = torch.randint(0, 2, (32,))
    F.cross_entropy(leader(torch.randn(32, 6), act), labels).backward()  # type: ignore[no-untyped-call]
    assert act.grad is not None
    return act.grad


def _singular_ratio(grad: torch.Tensor) -> float:
    values = torch.linalg.svdvals(grad.double())
    return float(values[1] / values[0])


def test_a_linear_top_sends_rank_one_gradients_and_a_hidden_top_does_not() -> None:
    linear = ModelSpec(kind="mlp", cut_width=8, leader_hidden=(4,))
    hidden = ModelSpec(kind="mlp", cut_width=8, leader_hidden=(4,), leader_hidden_top=(16,))
    assert _singular_ratio(_cut_gradient(linear)) < 1e-5
    assert _singular_ratio(_cut_gradient(hidden)) > 1e-2
    leader = build_leader(hidden, 6, seed=1)
    assert isinstance(leader, LeaderHalf)
    assert [type(m).__name__ for m in leader.top.modules()][:2] == ["Sequential", "Sequential"]


@pytest.mark.parametrize("value", [[0], [8, -1], ["8"], [True], "16", 16])
def test_bad_widths_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=r"\[model\] leader_hidden_top"):
        ModelSpec.from_toml_table({"leader_hidden_top": value})
