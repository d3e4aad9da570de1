"""The split models: Fedlearner's wide&deep and a plain MLP, as follower and leader halves.

A follower half maps its features to the cut-layer activations ``act1_f``; a leader half maps its
own features and ``act1_f`` to its outputs: two logits for a binary task, one per class for a
multiclass task, one value for regression. :class:`CombinedModel` joins them in one process; it
is the centralized twin that split training must reproduce exactly.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _Lookup(torch.autograd.Function):
    """Rows of an embedding table, with a scatter-add backward pass (CPU).

    PyTorch's dense embedding backward on CPU sorts the indices first; for the wide&deep
    shapes (256 rows x 512 slots) it takes about six times as long as adding each looked-up
    row's gradient into its table row in order, which is what this does. The order is the
    indices' own, so the result is deterministic.
    """

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = table.shape[0]
        return F.embedding(index, table)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        width = grad.shape[-1]
        out = grad.new_zeros(ctx.rows, width)
        out.index_add_(0, index.reshape(-1), grad.reshape(-1, width))
        return out, None


def lookup(table: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
    """``table(index)``, with the faster backward pass of :class:`_Lookup` on CPU."""
    if table.weight.is_cuda:  # CUDA's own backward is fast (and this one would use atomics)
        return table(index)  # type: ignore[no-any-return]
    out: torch.Tensor = _Lookup.apply(table.weight, index)  # type: ignore[no-untyped-call]
    return out


class SlotEmbedding(nn.Module):
    """One ``vocab x dim`` table per categorical slot, looked up and concatenated.

    Each slot holds one value per row, so Fedlearner's mean pooling over a slot's values is the
    identity here; the tables live in one ``nn.Embedding`` with per-slot offsets.
    """

    offsets: torch.Tensor

    def __init__(self, slots: int, vocab: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(slots * vocab, dim)
        nn.init.uniform_(self.table.weight, -0.05, 0.05)
        self.register_buffer("offsets", torch.arange(slots, dtype=torch.int64) * vocab)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Embed ``(batch, slots)`` codes into ``(batch, slots * dim)``."""
        return lookup(self.table, codes + self.offsets).flatten(1)


class MixedEncoder(nn.Module):
    """Numeric columns passed through, one embedding per categorical column, concatenated.

    The input's first ``numeric_width`` columns are floats; each of the remaining columns holds
    a category index (an exact small integer stored as float32) below its cardinality.
    """

    offsets: torch.Tensor

    def __init__(self, numeric_width: int, cardinalities: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.numeric_width = numeric_width
        self.table = nn.Embedding(sum(cardinalities), dim)
        nn.init.uniform_(self.table.weight, -0.05, 0.05)
        starts = itertools.accumulate((0, *cardinalities[:-1]))
        self.register_buffer("offsets", torch.tensor(list(starts), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, numeric + categorical)`` to ``(batch, numeric + categorical * dim)``."""
        codes = x[:, self.numeric_width :].to(torch.int64) + self.offsets
        return torch.cat([x[:, : self.numeric_width], lookup(self.table, codes).flatten(1)], dim=1)


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class FollowerHalf(nn.Module):
    """The follower's bottom model: features -> ``act1_f``."""

    def __init__(self, encoder: nn.Module, in_width: int, hidden: list[int], cut: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.bottom = _mlp([in_width, *hidden, cut])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the cut-layer activations."""
        out: torch.Tensor = self.bottom(self.encoder(x))
        return out


class LeaderHalf(nn.Module):
    """The leader's model: its own bottom, then a top over ``[own, act1_f]`` -> ``outputs``.

    With ``top_hidden`` empty the top is one linear layer, so every row's gradient on
    ``act1_f`` is a multiple of one vector whose sign is the row's label; widths in
    ``top_hidden`` put ReLU layers above the concatenation (``[model] leader_hidden_top``).
    """

    def __init__(
        self,
        encoder: nn.Module,
        in_width: int,
        hidden: list[int],
        cut: int,
        top_hidden: tuple[int, ...] = (),
        outputs: int = 2,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.bottom = _mlp([in_width, *hidden])
        joined = hidden[-1] + cut
        self.top: nn.Module = (
            nn.Sequential(_mlp([joined, *top_hidden]), nn.Linear(top_hidden[-1], outputs))
            if top_hidden
            else nn.Linear(joined, outputs)
        )

    def forward(self, x: torch.Tensor, act_f: torch.Tensor) -> torch.Tensor:
        """Compute logits from the leader's features and the follower's activations."""
        return self.joined(self.own(x), act_f)

    def own(self, x: torch.Tensor) -> torch.Tensor:
        """The leader's bottom tower: its own features -> the part the top joins to ``act1_f``."""
        out: torch.Tensor = self.bottom(self.encoder(x))
        return out

    def joined(self, own: torch.Tensor, act_f: torch.Tensor) -> torch.Tensor:
        """The top over the bottom tower's output (:meth:`own`) and the follower's activations."""
        out: torch.Tensor = self.top(torch.cat([own, act_f], dim=1))
        return out


class CombinedModel(nn.Module):
    """Both halves in one process: the centralized model split training must equal."""

    def __init__(self, follower: nn.Module, leader: nn.Module) -> None:
        super().__init__()
        self.follower = follower
        self.leader = leader

    def forward(self, x_leader: torch.Tensor, x_follower: torch.Tensor) -> torch.Tensor:
        """Compute logits end to end."""
        out: torch.Tensor = self.leader(x_leader, self.follower(x_follower))
        return out


class LeaderOnly(nn.Module):
    """The leader's half fed zeros where the follower's activations would be (a baseline)."""

    def __init__(self, leader: nn.Module, cut: int) -> None:
        super().__init__()
        self.leader = leader
        self.cut = cut

    def forward(self, x_leader: torch.Tensor) -> torch.Tensor:
        """Compute logits without the follower."""
        zeros = torch.zeros(x_leader.shape[0], self.cut, device=x_leader.device)
        out: torch.Tensor = self.leader(x_leader, zeros)
        return out
