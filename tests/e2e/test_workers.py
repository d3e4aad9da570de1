"""Two workers per party (four training processes): same quality as one, and crash-safe."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from cvfl.models.export import load_half, parameter_fingerprint
from cvfl.sealing import FileKeyProvider
from tests.e2e.jobs import Party, write_small_job

pytestmark = pytest.mark.e2e
PEER = "heartbeat_interval = 0.3\nheartbeat_timeout = 2.0\ngive_up_after = 8.0"
TRAIN = "checkpoint_every = 4"


def _halves(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        role: load_half(
            folder / role / "export" / f"{role}.safetensors.sealed",
            FileKeyProvider(folder / "keys" / f"{role}.key"),
        ).tensors
        for role in ("leader", "follower")
    }


def _fingerprints(folder: Path) -> list[str]:
    halves = _halves(folder)
    return [parameter_fingerprint(halves[role]) for role in ("leader", "follower")]


def _train(folder: Path, *options: str) -> tuple[Party, Party]:
    return Party(folder, "train", "--config", "leader.toml", *options), Party(
        folder, "train", "--config", "follower.toml", *options
    )


def _common_step(folder: Path) -> int:
    """The newest step whose checkpoint both parties hold."""
    from cvfl.sealing import Artifacts
    from cvfl.train.recovery import CheckpointStore

    steps = [
        {
            s.step
            for s in CheckpointStore(
                folder / role / "checkpoints",
                role,
                Artifacts(FileKeyProvider(folder / "keys" / f"{role}.key")),
            ).inventory()
        }
        for role in ("leader", "follower")
    ]
    return max(steps[0] & steps[1])


def _finish(*parties: Party) -> None:
    for party in parties:
        assert party.finish() == 0, party.output


def _auc(output: str) -> float:
    found = re.findall(r"^auc: ([0-9.]+)$", output, re.MULTILINE)
    assert len(found) == 1, output
    return float(found[0])


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    folder = tmp_path_factory.mktemp("one-worker")
    write_small_job(folder, peer_extra=PEER, train_extra=TRAIN)
    leader, follower = _train(folder)
    _finish(follower, leader)
    return folder, _auc(leader.output)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Party]:
    folder = tmp_path_factory.mktemp("two-workers")
    write_small_job(folder, peer_extra=PEER, train_extra=TRAIN, workers=2)
    leader, follower = _train(folder)
    _finish(follower, leader)
    return folder, leader


def test_two_workers_match_one(
    one_worker: tuple[Path, float], two_workers: tuple[Path, Party]
) -> None:
    folder, leader = two_workers
    assert "workers" in leader.output and "starting 2 workers" in leader.output
    assert abs(_auc(leader.output) - one_worker[1]) <= 0.01
    # Stronger than the AUC: each step's gradient is the same mean over the same rows, so the
    # trained halves agree with the one-worker halves up to float summation order.
    one, two = _halves(one_worker[0]), _halves(folder)
    for role in ("leader", "follower"):
        for name, value in one[role].items():
            torch.testing.assert_close(two[role][name], value, atol=1e-4, rtol=0, msg=role)


def _worker_pid(launcher: Party, rank: int, timeout: float = 30) -> int:
    """The pid of worker ``rank`` among the launcher's child processes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{launcher.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if f"RANK={rank}".encode() in environ:
                    return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"no worker {rank} under {launcher.proc.pid}")


def test_killing_one_worker_stops_its_party_and_resume_ends_the_same(
    two_workers: tuple[Path, Party], tmp_path: Path
) -> None:
    write_small_job(tmp_path, peer_extra=PEER, train_extra=TRAIN, workers=2)
    leader, follower = _train(tmp_path)
    assert leader.wait_for("checkpoint of step 8 written", 120), leader.output
    os.kill(_worker_pid(leader, 1), signal.SIGKILL)
    # The leader's group stops as a whole and says which worker died.
    assert leader.finish(60) == 8, leader.output
    assert "worker 1 of 2 was killed by SIGKILL" in leader.output
    # The follower's workers lose their peers and give up (give_up_after = 8 s).
    assert follower.finish(90) != 0, follower.output
    # Checkpoints load into any N: a copy of the stopped job resumes with one worker per party,
    # a change of the job its checkpoints record, so it is asked for on purpose.
    single = tmp_path.parent / f"{tmp_path.name}-one-worker"
    shutil.copytree(tmp_path, single, ignore=shutil.ignore_patterns("leader.port*"))
    for role in ("leader", "follower"):
        job = single / f"{role}.toml"
        job.write_text(job.read_text().replace("workers = 2", "workers = 1"))
    step = _common_step(single)
    leader, follower = _train(tmp_path)
    _finish(follower, leader)
    assert "resumed from the checkpoint of step" in leader.output
    assert _fingerprints(tmp_path) == _fingerprints(two_workers[0])
    leader, follower = _train(single)
    assert leader.finish() == 2 and "workers: checkpoint 2, job 1" in leader.output, leader.output
    follower.finish()
    leader, follower = _train(single, "--resume-from", str(step))
    _finish(follower, leader)
    assert f"resumed from the checkpoint of step {step}" in leader.output
    one, two = _halves(single), _halves(two_workers[0])
    for role in ("leader", "follower"):
        for name, value in two[role].items():
            torch.testing.assert_close(one[role][name], value, atol=1e-4, rtol=0, msg=role)


def test_stopping_the_launcher_stops_its_workers(tmp_path: Path) -> None:
    write_small_job(tmp_path, peer_extra=PEER, workers=2)
    leader = Party(tmp_path, "train", "--config", "leader.toml")  # no follower: it waits
    workers = [_worker_pid(leader, rank) for rank in (0, 1)]
    assert leader.wait_for("bridge listening", 120), leader.output
    leader.proc.terminate()
    assert leader.finish(60) != 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), pid


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]


def test_streamed_two_workers_equal_their_centralized_twin(tmp_path: Path) -> None:
    """Streamed, each worker reads only its own blocks; the step is still the whole mean."""
    from cvfl.train import load_party, train_centralized
    from cvfl.train.config import load_job

    write_small_job(tmp_path, peer_extra=PEER, workers=2)
    stream = 'reader = "stream"\nblock_rows = 50\nshuffle_blocks = 2\n'
    for role in ("leader", "follower"):
        job = tmp_path / f"{role}.toml"
        job.write_text(job.read_text().replace("[data]\n", f"[data]\n{stream}", 1))
    leader, follower = _train(tmp_path)
    _finish(follower, leader)
    assert "starting 2 workers" in leader.output
    cfgs = [load_job(tmp_path / f"{role}.toml") for role in ("leader", "follower")]
    parties = [load_party(cfg) for cfg in cfgs]  # worker 0's view: the two-worker schedule
    combined, central = train_centralized(parties[0], parties[1])
    assert central.steps == parties[0].schedule.total_steps > 0
    split = _halves(tmp_path)
    for role, half in (("leader", combined.leader), ("follower", combined.follower)):
        for name, value in half.state_dict().items():
            torch.testing.assert_close(split[role][name], value, atol=1e-4, rtol=0, msg=role)
