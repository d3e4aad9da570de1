"""Real datasets shipped with a dependency, split vertically between the two parties."""

from cvfl.datasets.breast_cancer import (
    FOLLOWER_FEATURES,
    LEADER_FEATURES,
    VerticalSplit,
    breast_cancer_split,
    standardise,
)

__all__ = [
    "FOLLOWER_FEATURES",
    "LEADER_FEATURES",
    "VerticalSplit",
    "breast_cancer_split",
    "standardise",
]
