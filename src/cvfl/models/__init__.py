"""Split models (wide&deep, MLP, custom factories), export and parameter fingerprints.

The names below are imported on first use, so that :mod:`cvfl.models.spec` (read with a job
file) does not import PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvfl.lazy import lazy_names

if TYPE_CHECKING:
    from cvfl.models.factory import build_follower, build_leader, load_factory, role_seed
    from cvfl.models.nets import (
        CombinedModel,
        FollowerHalf,
        LeaderHalf,
        LeaderOnly,
        SlotEmbedding,
    )
    from cvfl.models.spec import ModelSpec

_WHERE = {
    "CombinedModel": "nets",
    "FollowerHalf": "nets",
    "LeaderHalf": "nets",
    "LeaderOnly": "nets",
    "SlotEmbedding": "nets",
    "ModelSpec": "spec",
    "build_follower": "factory",
    "build_leader": "factory",
    "load_factory": "factory",
    "role_seed": "factory",
}

__all__ = [
    "CombinedModel",
    "FollowerHalf",
    "LeaderHalf",
    "LeaderOnly",
    "ModelSpec",
    "SlotEmbedding",
    "build_follower",
    "build_leader",
    "load_factory",
    "role_seed",
]


__getattr__ = lazy_names(__name__, _WHERE)
