"""Training survives cut and stalled connections and ends with exactly the same model."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cvfl.errors import CvflError, SealingError
from cvfl.models.export import load_half, parameter_fingerprint
from cvfl.train import NoProgress, TrainResult
from cvfl.train.config import JobConfig
from tests.conftest import keys_of
from tests.train.helpers import run_pair
from tests.train.proxy import ChaosProxy

Build = Callable[..., tuple[JobConfig, JobConfig]]
FAST = {
    "peer__heartbeat_interval": 0.2,
    "peer__heartbeat_timeout": 1.0,
    "peer__give_up_after": 30.0,
    "train__checkpoint_every": 7,
    "train__epochs": 4,
}


class CutAt(NoProgress):
    """Cuts the proxy at some leader steps and stalls it once, longer than the heartbeat."""

    def __init__(self, proxy: list[ChaosProxy], cuts: set[int], stall_at: int) -> None:
        self.proxy, self.cuts, self.stall_at = proxy, cuts, stall_at

    def step(self, number: int, loss: float | None) -> None:
        if number in self.cuts:
            threading.Timer(0.01, self.proxy[0].cut).start()
        if number == self.stall_at:
            self.proxy[0].stall(2.5)


def elsewhere(cfg: JobConfig, folder: Path) -> JobConfig:
    """The same job with its outputs in another folder."""
    job = dataclasses.replace(cfg.job, workdir=folder / cfg.role)
    return dataclasses.replace(cfg, job=job)


def _fingerprints(lead: object, follow: object, lcfg: JobConfig, fcfg: JobConfig) -> list[str]:
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    assert lead.export is not None and follow.export is not None
    return [
        parameter_fingerprint(load_half(lead.export, keys_of(lcfg)).tensors),
        parameter_fingerprint(load_half(follow.export, keys_of(fcfg)).tensors),
    ]


def test_cuts_and_a_stall_give_the_same_model(
    small_job: Build, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lead_cfg, follow_cfg = small_job(**FAST)
    baseline = _fingerprints(*run_pair(lead_cfg, follow_cfg), lead_cfg, follow_cfg)

    lead_cfg, follow_cfg = (elsewhere(c, tmp_path / "chaos") for c in small_job(**FAST))
    holder: list[ChaosProxy] = []

    def via(port: int) -> int:
        holder.append(ChaosProxy(port))
        return holder[0].port

    caplog.set_level(logging.INFO, logger="cvfl")
    progress = CutAt(holder, cuts={9, 20, 33}, stall_at=45)
    lead, follow = run_pair(lead_cfg, follow_cfg, via=via, leader_progress=progress)
    holder[0].close()
    assert _fingerprints(lead, follow, lead_cfg, follow_cfg) == baseline
    assert isinstance(lead, TrainResult) and isinstance(follow, TrainResult)
    assert lead.reconnects + follow.reconnects >= 4, (lead.reconnects, follow.reconnects)
    assert holder[0].connections >= 4  # the first stream and the reconnects
    assert "reconnected after" in caplog.text
    assert "no heartbeat from the peer" in caplog.text


def test_resume_from_a_tampered_checkpoint_names_the_file(small_job: Build) -> None:
    lead_cfg, follow_cfg = small_job(**FAST)
    first = run_pair(lead_cfg, follow_cfg)
    assert all(isinstance(r, TrainResult) for r in first), first
    folder = follow_cfg.job.workdir / "checkpoints"
    newest = sorted(folder.glob("follower-step-*.safetensors.sealed"))[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))
    # Started again with the same job files, both sides resume from the newest common step:
    # the follower's tampered checkpoint stops it, naming the file, and the leader with it.
    lead, follow = run_pair(lead_cfg, follow_cfg)
    assert isinstance(follow, SealingError), follow
    assert newest.name in follow.message
    assert isinstance(lead, CvflError), lead
