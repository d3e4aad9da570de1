"""Experiment tracking: the leader's per-epoch metrics and the report's figure, to a tracker.

``[train] track`` chooses the backend: ``none`` (the default), ``tensorboard`` (event files in
``[train] track_dir``) or ``mlflow`` (a run at ``[train] track_uri``). Both are optional extras,
imported only when chosen; a backend that is not installed is a configuration error naming
``[train] track`` and the command that installs it.

Only the leader tracks (the follower has no labels, so no metrics). What is written is what the
leader's training result holds anyway: the job's public settings (:func:`job_params`), the
held-out metrics and the mean training loss of each epoch, and the report's loss-curve figure.
Never ids, labels, features, keys or the paths of the job's data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger

if TYPE_CHECKING:
    from cvfl.report.quality import QualityReport
    from cvfl.train.config import JobConfig

log = get_logger(__name__)

Param = str | int | float | bool
TRACKERS = ("none", "tensorboard", "mlflow")
INSTALL = {
    "tensorboard": "pip install 'cvfl[tensorboard]' (or: pip install tensorboard)",
    "mlflow": "pip install 'cvfl[mlflow]' (or: pip install mlflow-skinny)",
}


class Tracker(Protocol):
    """Where the leader's run is recorded."""

    def log_params(self, params: Mapping[str, Param]) -> None:
        """Record the run's settings once."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record metric values at training step ``step``."""
        ...

    def log_png(self, name: str, png: bytes, step: int) -> None:
        """Record a figure (PNG bytes) under ``name``."""
        ...

    def close(self) -> None:
        """Flush and end the run."""
        ...


class NoTracker:
    """``track = "none"``: records nothing."""

    def log_params(self, params: Mapping[str, Param]) -> None:
        """Nothing to record."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Nothing to record."""

    def log_png(self, name: str, png: bytes, step: int) -> None:
        """Nothing to record."""

    def close(self) -> None:
        """Nothing to close."""


def open_tracker(cfg: JobConfig, run: str = "train") -> Tracker:
    """The tracker of ``cfg``'s ``[train] track`` (the leader's; a follower gets none).

    Args:
        cfg: The party's job.
        run: What this run records: ``train`` (per-epoch metrics) or ``report``.

    Raises:
        ConfigError: ``config.track``: the backend is not installed (the message says how to
            install it) or refuses ``[train] track_uri``.
    """
    train = cfg.train
    if train.track == "none":
        return NoTracker()
    if cfg.role != "leader":
        log.info("[train] track is the leader's: the follower has no metrics to record")
        return NoTracker()
    name = f"{cfg.job.id}-{run}"
    if train.track == "tensorboard":
        from cvfl.train.trackers import TensorboardTracker

        return TensorboardTracker(_imported("tensorboard"), tensorboard_dir(cfg), name)
    from cvfl.train.trackers import MlflowTracker

    return MlflowTracker(_imported("mlflow"), mlflow_uri(cfg), cfg.job.id, name)


def _imported(backend: str) -> Any:
    """The backend's module, imported now; its absence is a configuration error."""
    import importlib

    module = {"tensorboard": "torch.utils.tensorboard", "mlflow": "mlflow"}[backend]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            mismatch("[train] track", f"an installed backend ({INSTALL[backend]})", repr(backend))
            + f": {exc}",
            code="config.track",
        ) from exc


def tensorboard_dir(cfg: JobConfig) -> Path:
    """``[train] track_dir``, by default ``tensorboard`` in the job's workdir."""
    return cfg.train.track_dir or cfg.job.workdir / "tensorboard"


def mlflow_uri(cfg: JobConfig) -> str:
    """``[train] track_uri``, by default a ``file:`` store ``mlruns`` in the job's workdir."""
    return cfg.train.track_uri or (cfg.job.workdir / "mlruns").absolute().as_uri()


def job_params(cfg: JobConfig) -> dict[str, Param]:
    """The job's public settings a tracker records (no path, seed, key or data)."""
    t, m = cfg.train, cfg.model
    return {
        "job_id": cfg.job.id,
        "model_kind": m.kind,
        "task": m.task,
        "cut_width": m.cut_width,
        "optimizer": t.optimizer,
        "lr": t.lr,
        "batch_size": t.batch_size,
        "epochs": t.epochs,
        "max_steps": t.max_steps,
        "workers": t.workers,
        "wire_dtype": t.wire_dtype,
        "staleness": t.staleness,
        "privacy_defence": cfg.privacy.defence,
    }


def epoch_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one history record (``epoch``, ``train_loss``, ``val_*``), finite only.

    ``step`` is where they are logged, not a metric.
    """
    return {
        key: float(value)
        for key, value in record.items()
        if key != "step"
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def report_metrics(report: QualityReport) -> dict[str, float]:
    """The report's figures: each model's held-out metrics and time, the wire and the speed."""
    figures: dict[str, float] = {}
    for model in report.models:
        name = model.name.replace(" ", "_")
        figures |= {f"report/{name}/{k}": v for k, v in model.metrics.as_dict().items()}
        figures[f"report/{name}/seconds"] = model.seconds
    figures["report/wire_bytes_per_step"] = report.wire.bytes_per_step
    figures["report/examples_per_second"] = report.examples_per_second
    return {key: value for key, value in figures.items() if math.isfinite(value)}


def track_report(cfg: JobConfig, report: QualityReport, png: bytes) -> None:
    """Record a written report (its figures and loss-curve plot) in the leader's tracker."""
    tracker = open_tracker(cfg, "report")
    try:
        tracker.log_params(job_params(cfg))
        tracker.log_metrics(report_metrics(report), report.split.steps)
        tracker.log_png("report/loss-curves.png", png, report.split.steps)
    finally:
        tracker.close()
