"""Exported (untrained) halves of a small job, for scoring tests without a training run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from cvfl.bridge.security import PlaintextSecurity
from cvfl.serve import (
    PredictResult,
    PredictSection,
    prepare_predict,
    run_predict_follower,
    run_predict_leader,
)
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


def predict_both(
    lead: JobConfig, follow: JobConfig, tmp: Path, *, timeout: float = 30, **changes: Any
) -> tuple[PredictResult | BaseException, PredictResult | BaseException]:
    """Score with both parties over plaintext, the leader in a thread; each outcome or error.

    ``changes`` holds ``[predict]`` settings per role (``leader={"input": path}``).
    """
    security = PlaintextSecurity()
    out: dict[str, PredictResult | BaseException] = {}

    def run(cfg: JobConfig) -> None:
        try:
            job = prepare_predict(cfg, section(cfg, tmp, **changes.get(cfg.role, {})), security)
            fn = run_predict_leader if cfg.role == "leader" else run_predict_follower
            out[cfg.role] = fn(job, security)
        except BaseException as exc:  # handed to the test thread
            out[cfg.role] = exc

    thread = threading.Thread(target=run, args=(lead,))
    thread.start()
    run(follow)
    thread.join(timeout)
    return out["leader"], out["follower"]
