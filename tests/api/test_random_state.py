"""Training draws from each party's own generator: the caller's random state is left alone.

Both halves use dropout, so every training step draws random numbers; a run stopped midway and
resumed from its checkpoints must still end exactly where the uninterrupted run ends.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from cvfl import api
from cvfl.cli.parties import free_port
from cvfl.errors import CvflError
from cvfl.train import checkpoint
from cvfl.train.config import JobConfig
from cvfl.train.rng import drawing_from, training_generator
from cvfl.train.stop import STOPPED

from .jobs import mapping, tables
from .models import DropoutFollower, dropout_leader


def dropout_pair(folder: Path, workdir: str, staleness: int = 0) -> tuple[JobConfig, JobConfig]:
    port = free_port()
    jobs = []
    for role, table in zip(("leader", "follower"), tables(), strict=True):
        raw = mapping(role, table, f"{workdir}-{role}", port)
        raw["model"] |= {"follower_factory": DropoutFollower, "leader_factory": dropout_leader}
        raw["train"] |= {"staleness": staleness}
        jobs.append(api.build_job(raw, folder))
    return jobs[0], jobs[1]


@pytest.mark.parametrize("staleness", [0, 2])
def test_training_leaves_the_global_random_state_and_resumes_exactly(
    tmp_path: Path, staleness: int
) -> None:
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    whole = api.run_local(*dropout_pair(tmp_path, "whole", staleness))
    assert torch.equal(torch.get_rng_state(), before)
    assert whole.leader.steps > 7  # the stop below falls inside the run

    leader, follower = dropout_pair(tmp_path, "cut", staleness)
    stop = threading.Event()

    def progress(step: int, total: int, loss: float | None) -> None:
        if step == 7:
            stop.set()

    with pytest.raises(CvflError) as info:
        api.run_local(leader, follower, progress=progress, stop=stop)
    assert info.value.code == STOPPED
    torch.manual_seed(99)  # another caller state: the resumed run must not depend on it
    resumed = api.run_local(leader, follower)
    assert resumed.leader.fingerprint == whole.leader.fingerprint
    assert resumed.follower.fingerprint == whole.follower.fingerprint
    assert resumed.leader.metrics == whole.leader.metrics


def test_checkpoint_restore_fills_the_given_generator_only() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    rng = training_generator(5, "leader/0")
    with drawing_from(rng):
        torch.rand(3)
    data = checkpoint.encode(3, "job", model, optimizer, rng=rng)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    fresh = training_generator(5, "leader/0")
    checkpoint.restore(checkpoint.decode(data, Path("ckpt")), model, optimizer, fresh)
    assert torch.equal(fresh.get_state(), rng.get_state())
    assert torch.equal(torch.get_rng_state(), before)
    with drawing_from(fresh):
        drawn = torch.rand(2)
    with drawing_from(rng):
        assert torch.equal(torch.rand(2), drawn)
    assert torch.equal(torch.get_rng_state(), before)
