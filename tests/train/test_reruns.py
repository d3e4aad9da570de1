"""Reruns: a checkpoint is resumed only by its own job; --fresh and --resume-from; the cadence.

Both parties run in one process over a real loopback bridge (plaintext), with sealed outputs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from cvfl.bridge.security import PlaintextSecurity
from cvfl.cli.reruns import Rerun, sigterm_stops
from cvfl.errors import ConfigError, PeerStoppedError, PeerUnavailableError
from cvfl.models.export import load_half, parameter_fingerprint
from cvfl.sealing import Artifacts
from cvfl.train import NoProgress, TrainResult
from cvfl.train import peers as peers_module
from cvfl.train.config import JobConfig, PeerSection
from cvfl.train.peers import dial_leader
from cvfl.train.recovery import RECORD_PURPOSE, CheckpointStore
from cvfl.train.reruns import start_fresh
from tests.conftest import keys_of
from tests.train.helpers import run_pair

Build = Callable[..., tuple[JobConfig, JobConfig]]


class Recorder(NoProgress):
    """Records what a training loop shows."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, int]] = []
        self.steps: list[int] = []
        self.finished = 0

    def start(self, total_steps: int, description: str, done: int = 0) -> None:
        self.starts.append((total_steps, done))

    def step(self, number: int, loss: float | None) -> None:
        self.steps.append(number)

    def finish(self) -> None:
        self.finished += 1


def _trained(lead: object, follow: object) -> tuple[TrainResult, TrainResult]:
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    return lead, follow


def _fingerprints(
    results: tuple[TrainResult, TrainResult], cfgs: tuple[JobConfig, ...]
) -> list[str]:
    out = []
    for result, cfg in zip(results, cfgs, strict=True):
        assert result.export is not None
        out.append(parameter_fingerprint(load_half(result.export, keys_of(cfg)).tensors))
    return out


def _store(cfg: JobConfig) -> CheckpointStore:
    return CheckpointStore(cfg.job.workdir / "checkpoints", cfg.role, Artifacts(keys_of(cfg)))


def test_a_changed_lr_is_refused_on_both_sides_naming_it(small_job: Build) -> None:
    _trained(*run_pair(*small_job(train__checkpoint_every=10)))
    started = time.monotonic()
    lead, follow = run_pair(*small_job(train__checkpoint_every=10, train__lr=0.02))
    assert time.monotonic() - started < 15
    for side, config in ((lead, "leader"), (follow, "follower")):
        assert isinstance(side, ConfigError), side
        assert side.code == "config.checkpoint_changed"
        message = side.message
        assert "the newest checkpoint (step 30) was written by another configuration" in message
        assert "lr: checkpoint 0.01, job 0.02" in message
        assert "--fresh" in message and "--resume-from 30" in message
        assert "epochs" not in message  # only what changed is named
        assert f"{config}" in message  # the folder of the refused checkpoints


def test_a_changed_privacy_defence_is_refused_naming_it(small_job: Build) -> None:
    _trained(*run_pair(*small_job(train__checkpoint_every=10)))
    lead, follow = run_pair(*small_job(train__checkpoint_every=10, privacy__defence="max_norm"))
    for side in (lead, follow):
        assert isinstance(side, ConfigError), side
        assert side.code == "config.checkpoint_changed"
        assert "privacy: checkpoint" in side.message and "max_norm" in side.message


def test_epochs_extended_on_purpose_equal_a_longer_run(small_job: Build, tmp_path: Path) -> None:
    _trained(*run_pair(*small_job(train__checkpoint_every=10)))
    cfgs = small_job(train__checkpoint_every=10, train__epochs=3)
    lead, _ = run_pair(*cfgs)
    assert isinstance(lead, ConfigError) and "epochs: checkpoint 2, job 3" in lead.message
    for cfg in cfgs:
        with pytest.raises(ConfigError, match=r"--resume-from: expected a step this party holds"):
            Rerun(resume_from=25).prepare(cfg)
        Rerun(resume_from=20).prepare(cfg)  # 30 is newer than 20: set aside
        assert [s.step for s in _store(cfg).inventory()] == [10, 20]
        assert list((cfg.job.workdir / "previous-runs").glob("*/checkpoints/*-step-000000030*"))
    progress = Recorder()
    results = _trained(*run_pair(*cfgs, leader_progress=progress))
    assert progress.starts == [(45, 20)] and progress.steps[0] == 21 and progress.finished == 1
    assert results[0].steps == 45 and results[0].metrics is not None
    assert [h["epoch"] for h in results[0].history] == [0, 1, 2]
    # The extended run is exactly the run that had three epochs from the start.
    straight = tuple(_elsewhere(c, tmp_path / "straight") for c in cfgs)
    expected = _fingerprints(_trained(*run_pair(*straight)), straight)
    assert _fingerprints(results, cfgs) == expected


def test_fewer_epochs_than_the_checkpoint_is_refused(small_job: Build) -> None:
    _trained(*run_pair(*small_job(train__checkpoint_every=10)))
    lead_cfg, _ = small_job(train__checkpoint_every=10, train__epochs=1)
    with pytest.raises(ConfigError, match=r"at most the job's last step, 15, seen 30.*--fresh"):
        Rerun(resume_from=30).prepare(lead_cfg)


def test_fresh_keeps_the_old_run_aside_and_starts_over(
    small_job: Build, caplog: pytest.LogCaptureFixture
) -> None:
    cfgs = small_job(train__checkpoint_every=10)
    first = _fingerprints(_trained(*run_pair(*cfgs)), cfgs)
    before = {
        cfg.role: sorted(p.name for p in cfg.job.workdir.rglob("*") if p.is_file()) for cfg in cfgs
    }
    for cfg in cfgs:
        folder = start_fresh(cfg)
        assert folder is not None and folder.parent.name == "previous-runs"
        assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == before[cfg.role]
        assert (folder / "checkpoints").is_dir() and (folder / "export").is_dir()
        assert not list((cfg.job.workdir / "checkpoints").iterdir())
        assert start_fresh(cfg) is None  # nothing left to move
    caplog.set_level(logging.INFO, logger="cvfl")
    assert _fingerprints(_trained(*run_pair(*cfgs)), cfgs) == first
    assert "no checkpoint yet: starting from step 0" in caplog.text
    assert "resumed from" not in caplog.text


def test_a_checkpoint_written_by_older_code_is_refused(small_job: Build) -> None:
    cfgs = small_job(train__checkpoint_every=10)
    _trained(*run_pair(*cfgs))
    store = _store(cfgs[0])
    newest = store.inventory()[-1]
    old = {"step": newest.step, "digest": newest.digest.hex(), "peer": newest.peer_digest.hex()}
    path = store.folder / f"leader-step-{newest.step:09d}.json"
    store.artifacts.write(path, json.dumps(old).encode(), RECORD_PURPOSE)
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, ConfigError) and lead.code == "config.checkpoint_unknown"
    assert "records no configuration (written by an older cvfl)" in lead.message
    assert "--resume-from 30" in lead.message
    # The follower (whose own checkpoints belong to the job) is told why the leader stops.
    assert isinstance(follow, PeerStoppedError), follow
    assert follow.code == "config.checkpoint_unknown"
    assert follow.message.startswith("the leader stopped: [config.checkpoint_unknown] its newest")
    assert follow.message.endswith("; fix it there and restart both")


def test_a_final_checkpoint_is_evaluated_again(small_job: Build) -> None:
    cfgs = small_job(train__checkpoint_every=15)
    first, _ = _trained(*run_pair(*cfgs))
    progress = Recorder()
    again, _ = _trained(*run_pair(*cfgs, leader_progress=progress))
    assert progress.starts == [(30, 30)] and progress.steps == []
    assert again.steps == 30 and again.metrics is not None and first.metrics is not None
    assert again.metrics.auc == pytest.approx(first.metrics.auc, abs=1e-9)
    assert again.examples_per_second == 0.0  # nothing trained in this process
    assert again.fingerprint == first.fingerprint


def test_checkpoints_by_time(small_job: Build) -> None:
    cfgs = small_job(train__checkpoint_every=0, train__checkpoint_every_s=1e-9)
    _trained(*run_pair(*cfgs))
    for cfg in cfgs:
        states = _store(cfg).inventory()
        assert [s.step for s in states] == [28, 29, 30]  # one per step, the newest three kept
        assert all(s.peer_digest for s in states)


def test_waiting_for_the_leader_names_it_with_a_countdown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(peers_module, "TICK", 0.4)
    caplog.set_level(logging.INFO, logger="cvfl")
    peer = PeerSection(connect=f"127.0.0.1:{port}", security="insecure")
    with pytest.raises(
        PeerUnavailableError, match=f"could not reach the leader at 127.0.0.1:{port}"
    ):
        dial_leader(PlaintextSecurity(), peer, 1.5)
    assert f"connecting to the leader at 127.0.0.1:{port} (up to 2 s)" in caplog.text
    assert f"waiting for the leader at 127.0.0.1:{port}: 1 s left" in caplog.text


def test_sigterm_stops_like_ctrl_c_with_code_143() -> None:
    with pytest.raises(typer.Exit) as info, sigterm_stops():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert info.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def _elsewhere(cfg: JobConfig, folder: Path) -> JobConfig:
    import dataclasses

    return dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, workdir=folder / cfg.role))


def test_terminal_progress_starts_at_the_resumed_step(caplog: pytest.LogCaptureFixture) -> None:
    from cvfl.cli.progress import TerminalProgress

    caplog.set_level(logging.INFO, logger="cvfl")
    shown = TerminalProgress("leader", interval=0.0)
    shown.start(45, "leader", done=20)
    shown.step(21, 0.5)
    shown.finish()
    shown.finish()  # idempotent
    shown.start(30, "leader", done=30)
    assert "leader: training steps 21 to 45 (resumed at step 20)" in caplog.text
    assert "leader: step 21/45 loss 0.5000" in caplog.text
    assert "leader: all 30 steps done (resumed at step 30)" in caplog.text
