"""Split training: the leader's and follower's loops, their local twins, checkpoints, metrics.

The names below are imported on first use, so that reading a job file
(:mod:`cvfl.train.config`) does not import PyTorch (``cvfl check`` and ``cvfl align`` stay light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvfl.lazy import lazy_names

if TYPE_CHECKING:
    from cvfl.train.config import JobConfig, load_job
    from cvfl.train.follower import run_follower
    from cvfl.train.leader import run_leader
    from cvfl.train.local import train_centralized, train_leader_only
    from cvfl.train.metrics import Metrics, binary_metrics, roc_auc
    from cvfl.train.party import NoProgress, Party, Progress, configure_threads, load_party
    from cvfl.train.result import TrainResult
    from cvfl.train.schedule import Schedule

_WHERE = {
    "JobConfig": "config",
    "load_job": "config",
    "run_follower": "follower",
    "run_leader": "leader",
    "train_centralized": "local",
    "train_leader_only": "local",
    "Metrics": "metrics",
    "binary_metrics": "metrics",
    "roc_auc": "metrics",
    "NoProgress": "party",
    "Party": "party",
    "Progress": "party",
    "load_party": "party",
    "configure_threads": "party",
    "TrainResult": "result",
    "Schedule": "schedule",
}

__all__ = [
    "JobConfig",
    "Metrics",
    "NoProgress",
    "Party",
    "Progress",
    "Schedule",
    "TrainResult",
    "binary_metrics",
    "configure_threads",
    "load_job",
    "load_party",
    "roc_auc",
    "run_follower",
    "run_leader",
    "train_centralized",
    "train_leader_only",
]


__getattr__ = lazy_names(__name__, _WHERE)
