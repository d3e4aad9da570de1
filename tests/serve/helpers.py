"""Exported (untrained) halves of a small job, for scoring tests without a training run."""

from __future__ import annotations

from pathlib import Path

from cvfl.serve import PredictSection
from cvfl.train import leader as leader_loop
from cvfl.train.config import JobConfig
from cvfl.train.follower import cut_spec as follower_cut
from cvfl.train.party import export, load_party
from cvfl.train.result import TrainResult


def export_untrained(cfg: JobConfig, steps: int = 3) -> str:
    """Export ``cfg``'s freshly initialised half; return its fingerprint."""
    party = load_party(cfg)
    cut = leader_loop.cut_spec(party) if cfg.role == "leader" else follower_cut(party)
    result = TrainResult(role=cfg.role, steps=steps, seconds=0.0)
    export(party, result, cut)
    return result.fingerprint


def section(cfg: JobConfig, tmp: Path, **changes: object) -> PredictSection:
    """Score the party's own training table in batches of 100."""
    values: dict[str, object] = {
        "input": cfg.data.path,
        "output": tmp / "scores.parquet",
        "batch_size": 100,
        "report": tmp / f"{cfg.role}-predict.json",
    }
    values.update(changes)
    return PredictSection(**values)  # type: ignore[arg-type]
