"""The leader's step split around the follower's, so both parties compute at once.

With the built-in leader half (:class:`~cvfl.models.LeaderHalf`) and one worker, the leader's own
tower does not depend on the follower's activations. Its forward pass runs before they arrive
(while the follower runs its own), and its backward pass after the cut-layer gradient has gone
back (while the follower runs its own backward). The exact schedule is unchanged: every
parameter's gradient comes from the same operations on the same values as one backward pass
over the whole graph, so split training still equals its centralized twin.

Other leaders (a custom model, several workers under DDP, whose gradient hooks expect one
backward pass) take the one-pass path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

import torch
from torch import nn

from cvfl.models import LeaderHalf
from cvfl.train.party import Party
from cvfl.train.rng import drawing_from


@dataclass
class OwnTower:
    """The leader's own tower of one step: its output, and later the gradient on it."""

    model: LeaderHalf
    out: torch.Tensor
    grad: torch.Tensor | None = None

    @classmethod
    def run(cls, model: LeaderHalf, inputs: torch.Tensor) -> OwnTower:
        """The tower's forward pass on ``inputs``."""
        return cls(model, model.own(inputs))

    def logits(self, act: torch.Tensor) -> torch.Tensor:
        """The top over the tower's output and the follower's activations."""
        return self.model.joined(self.out, act)

    def top_backward(self, loss: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Backpropagate ``loss`` through the top only; return the gradient on ``act``.

        The top's parameters get their gradients; the tower's waits for :meth:`finish`.
        """
        params = [p for p in self.model.top.parameters() if p.requires_grad]
        tower = [self.out] if self.out.requires_grad else []  # a frozen tower learns nothing
        act_grad, *grads = torch.autograd.grad(loss, [act, *tower, *params])
        if tower:
            self.grad = grads.pop(0)
        for param, grad in zip(params, grads, strict=True):
            _accumulate(param, grad)
        return act_grad

    def finish(self) -> None:
        """Backpropagate the top's gradient through the tower (after the cut gradient left)."""
        if self.grad is not None:
            self.out.backward(self.grad)  # type: ignore[no-untyped-call]


def start_own(party: Party, inputs: torch.Tensor) -> OwnTower | None:
    """Run the leader's own tower on ``inputs`` now, where its model allows (else ``None``)."""
    if not splits(party.model, party.workers):
        return None
    with drawing_from(party.rng):  # the step's draws: the same order as one forward pass
        return OwnTower.run(party.model, inputs)


def splits(model: nn.Module, workers: int) -> TypeGuard[LeaderHalf]:
    """Whether the leader's step runs split around the follower's (the built-in half, 1 worker)."""
    return workers == 1 and isinstance(model, LeaderHalf)


def _accumulate(param: nn.Parameter, grad: torch.Tensor) -> None:
    param.grad = grad if param.grad is None else param.grad + grad
