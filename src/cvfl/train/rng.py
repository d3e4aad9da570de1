"""Each party's own random generator: training draws from it, never from the caller's.

A party keeps a :class:`torch.Generator` seeded from the job seed, its role and its worker rank;
a step's computation (forward and backward passes, never a wait on the network) runs with the
global generator borrowed in that state (:func:`cvfl.models.generators.drawing_from`), and its
draws are kept in the party's generator afterwards. The caller's random state is the same after
training as before, and a checkpoint records the party's generator, so a resumed run draws
exactly what the uninterrupted one drew.
"""

from __future__ import annotations

import torch

from cvfl.models.factory import role_seed
from cvfl.models.generators import drawing_from

__all__ = ["drawing_from", "training_generator"]


def training_generator(seed: int, role: str) -> torch.Generator:
    """A fresh generator for ``role``'s training draws, derived from the job seed."""
    return torch.Generator().manual_seed(role_seed(seed, f"train/{role}"))
