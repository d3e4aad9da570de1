"""The quality report: the split model against a leader-only and a centralized model.

The split model's figures come from the leader's ``leader-result.json``. The two baselines are
trained here, in one process, with the same model, schedule and optimiser settings
(:func:`cvfl.train.local.train_leader_only`, :func:`cvfl.train.local.train_centralized`). The
centralized model needs BOTH parties' tables in one place, which only a demo or evaluation
setting has; without the follower's job file it is left out and the report says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvfl.errors import DataError
from cvfl.report.leakage import LeakFigures, leak_figures
from cvfl.report.wire import WireFigures, wire_figures
from cvfl.train.config import JobConfig, load_job
from cvfl.train.metrics import Metrics
from cvfl.train.party import load_party


@dataclass(frozen=True)
class Curve:
    """Per-epoch training and validation loss of one model."""

    epochs: tuple[int, ...]
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]


@dataclass(frozen=True)
class ModelFigures:
    """Held-out metrics and loss curves of one model."""

    name: str
    metrics: Metrics
    curve: Curve
    seconds: float
    steps: int


@dataclass(frozen=True)
class QualityReport:
    """Everything ``cvfl report`` shows."""

    job_id: str
    split: ModelFigures
    leader_only: ModelFigures
    centralized: ModelFigures | None
    wire: WireFigures
    batch_size: int
    examples_per_second: float
    notes: tuple[str, ...] = field(default=())
    leakage: LeakFigures | None = None

    @property
    def models(self) -> tuple[ModelFigures, ...]:
        """The models compared, split first."""
        rest = (self.centralized,) if self.centralized else ()
        return (self.split, self.leader_only, *rest)


def curve_from_history(history: list[dict[str, Any]]) -> Curve:
    """Read a curve from a result history (split: ``val_loss``; local: ``val_log_loss``)."""
    val_key = "val_loss" if history and "val_loss" in history[0] else "val_log_loss"
    return Curve(
        epochs=tuple(int(h.get("epoch", i)) + 1 for i, h in enumerate(history)),
        train_loss=tuple(float(h.get("train_loss", math.nan)) for h in history),
        val_loss=tuple(float(h.get(val_key, math.nan)) for h in history),
    )


def read_split_result(cfg: JobConfig) -> dict[str, Any]:
    """The leader's ``leader-result.json`` for ``cfg``'s job."""
    path = cfg.job.workdir / "leader-result.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path}: no such file (train the job first: cvfl train --config)",
            code="data.missing_file",
        ) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}", code="data.unreadable") from exc
    if not data.get("metrics"):
        raise DataError(f"{path}: no held-out metrics in the result", code="data.incomplete")
    return data


def _split_figures(result: dict[str, Any]) -> ModelFigures:
    metrics = Metrics.from_json(str(result.get("task", "binary")), result["metrics"])
    curve = curve_from_history(list(result.get("history", [])))
    return ModelFigures("split", metrics, curve, float(result["seconds"]), int(result["steps"]))


def _loaded(job: Path | JobConfig) -> JobConfig:
    return job if isinstance(job, JobConfig) else load_job(job)


def build_report(
    leader_config: Path | JobConfig, follower_config: Path | JobConfig | None = None
) -> QualityReport:
    """Read the split result and train the two baselines the same way.

    Each job is given loaded or as the path of its job file.
    """
    from cvfl.train.local import train_centralized, train_leader_only

    cfg = _loaded(leader_config)
    result = read_split_result(cfg)
    party = load_party(cfg)
    schedule = party.schedule
    lonely = train_leader_only(party)
    assert lonely.metrics is not None
    leader_only = ModelFigures(
        "leader only",
        lonely.metrics,
        curve_from_history(lonely.history),
        lonely.seconds,
        lonely.steps,
    )
    centralized = None
    notes = []
    if follower_config is not None:
        _, central = train_centralized(load_party(cfg), load_party(_loaded(follower_config)))
        assert central.metrics is not None
        centralized = ModelFigures(
            "centralized",
            central.metrics,
            curve_from_history(central.history),
            central.seconds,
            central.steps,
        )
        notes.append(
            "centralized: both parties' tables in one process; only a demo or evaluation "
            "setting has them (a real deployment never does)"
        )
    else:
        notes.append("centralized: left out (it needs the follower's table: --follower-config)")
    wire = wire_figures(schedule, cfg.model.cut_width, cfg.model.cut_name)
    return QualityReport(
        job_id=cfg.job.id,
        split=_split_figures(result),
        leader_only=leader_only,
        centralized=centralized,
        wire=wire,
        batch_size=cfg.train.batch_size,
        examples_per_second=float(result.get("examples_per_second", 0.0)),
        notes=tuple(notes),
        leakage=leak_figures(result),
    )
