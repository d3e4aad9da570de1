"""Split models (wide&deep, MLP, custom factories), export and parameter fingerprints."""

from cvfl.models.factory import build_follower, build_leader, load_factory, role_seed
from cvfl.models.nets import CombinedModel, FollowerHalf, LeaderHalf, LeaderOnly, SlotEmbedding
from cvfl.models.spec import ModelSpec

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
