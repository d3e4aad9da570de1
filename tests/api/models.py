"""Model halves written in Python for the API tests (importable, so exports can be reloaded)."""

from __future__ import annotations

import torch
from torch import nn

from cvfl.models.spec import ModelSpec


class FollowerNet(nn.Module):
    """The follower's half as an ``nn.Module`` class: ``FollowerNet(spec, num_features)``."""

    def __init__(self, spec: ModelSpec, num_features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(num_features, 8), nn.ReLU(), nn.Linear(8, spec.cut_width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cut-layer activations ``[batch, cut_width]``."""
        out: torch.Tensor = self.body(x)
        return out


class _Leader(nn.Module):
    def __init__(self, num_features: int, cut_width: int) -> None:
        super().__init__()
        self.own = nn.Linear(num_features, 4)
        self.top = nn.Linear(4 + cut_width, 2)

    def forward(self, x: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.top(torch.cat([torch.relu(self.own(x)), act], dim=1))
        return out


def leader_net(spec: ModelSpec, num_features: int) -> nn.Module:
    """The leader's half from a plain factory function: two-class logits."""
    return _Leader(num_features, spec.cut_width)


class DropoutFollower(FollowerNet):
    """The follower's half with dropout: each training step draws from a random generator."""

    def __init__(self, spec: ModelSpec, num_features: int) -> None:
        super().__init__(spec, num_features)
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cut-layer activations of the dropped-out features."""
        out: torch.Tensor = self.body(self.drop(x))
        return out


class _DropoutLeader(_Leader):
    def __init__(self, num_features: int, cut_width: int) -> None:
        super().__init__(num_features, cut_width)
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return super().forward(self.drop(x), act)


def dropout_leader(spec: ModelSpec, num_features: int) -> nn.Module:
    """The leader's half with dropout on its own features."""
    return _DropoutLeader(num_features, spec.cut_width)
