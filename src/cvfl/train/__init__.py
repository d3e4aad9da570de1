"""Split training: the leader's and follower's loops, their local twins, checkpoints, metrics."""

from cvfl.train.config import JobConfig, load_job
from cvfl.train.follower import run_follower
from cvfl.train.leader import run_leader
from cvfl.train.local import train_centralized, train_leader_only
from cvfl.train.metrics import Metrics, binary_metrics, roc_auc
from cvfl.train.party import NoProgress, Party, Progress, load_party
from cvfl.train.result import TrainResult
from cvfl.train.schedule import Schedule

__all__ = [
    "JobConfig",
    "Metrics",
    "NoProgress",
    "Party",
    "Progress",
    "Schedule",
    "TrainResult",
    "binary_metrics",
    "load_job",
    "load_party",
    "roc_auc",
    "run_follower",
    "run_leader",
    "train_centralized",
    "train_leader_only",
]
