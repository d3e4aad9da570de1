"""The documented Python surface of cvfl: run jobs without the CLI (see docs/python-api.md).

- :func:`align`, :func:`train`, :func:`predict`, :func:`report`: one party's command, from a
  loaded job or the path of its job file (the ``cvfl`` commands of the same names run these);
  :func:`serve` starts this party's side of online scoring and returns it running.
- :func:`fallback`: the leader's leader-only model, which ``cvfl serve`` can score with when
  the split model cannot (``cvfl fallback``).
- :func:`run_local`: both parties of a job in this process (threads over loopback).
- :func:`build_job`: a job from a Python mapping shaped like the job file, with model factories
  given as functions and tables as ``pyarrow.Table`` / pandas ``DataFrame``; :func:`save_job`
  writes it as the job file the commands read.

Names are imported on first use, so ``import cvfl.api`` does not import PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvfl.lazy import lazy_names

if TYPE_CHECKING:
    from cvfl.api.alignment import align
    from cvfl.api.jobs import as_job, build_job, factory_path, save_job
    from cvfl.api.local import LocalResult, run_local
    from cvfl.api.progress import CallbackProgress
    from cvfl.api.scoring import Report, predict, report
    from cvfl.api.serving import serve
    from cvfl.api.training import fallback, train
    from cvfl.train.config import JobConfig
    from cvfl.train.party import Progress
    from cvfl.train.result import TrainResult

_WHERE = {
    "align": "cvfl.api.alignment",
    "as_job": "cvfl.api.jobs",
    "build_job": "cvfl.api.jobs",
    "factory_path": "cvfl.api.jobs",
    "save_job": "cvfl.api.jobs",
    "LocalResult": "cvfl.api.local",
    "run_local": "cvfl.api.local",
    "CallbackProgress": "cvfl.api.progress",
    "Report": "cvfl.api.scoring",
    "predict": "cvfl.api.scoring",
    "report": "cvfl.api.scoring",
    "serve": "cvfl.api.serving",
    "train": "cvfl.api.training",
    "fallback": "cvfl.api.training",
    "JobConfig": "cvfl.train.config",
    "Progress": "cvfl.train.party",
    "TrainResult": "cvfl.train.result",
}

__all__ = [
    "CallbackProgress",
    "JobConfig",
    "LocalResult",
    "Progress",
    "Report",
    "TrainResult",
    "align",
    "as_job",
    "build_job",
    "factory_path",
    "fallback",
    "predict",
    "report",
    "run_local",
    "save_job",
    "serve",
    "train",
]


__getattr__ = lazy_names(__name__, _WHERE)
