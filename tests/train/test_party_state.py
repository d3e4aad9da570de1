"""Loading a party changes no process-wide PyTorch setting unless asked; its group is given."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator

import pytest
import torch

from cvfl.bridge.security import PlaintextSecurity
from cvfl.train import configure_threads, load_party
from cvfl.train.config import JobConfig
from cvfl.workers import WorkerContext, join_group

Build = Callable[..., tuple[JobConfig, JobConfig]]


@pytest.fixture
def threads_kept() -> Iterator[int]:
    """A thread count the job's ``threads = 1`` would change, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        yield 3
    finally:
        torch.set_num_threads(before)


def test_load_party_leaves_the_thread_count(small_job: Build, threads_kept: int) -> None:
    lead_cfg, follow_cfg = small_job()
    assert lead_cfg.train.threads == 1
    load_party(lead_cfg)
    load_party(follow_cfg)
    assert torch.get_num_threads() == threads_kept


def test_load_party_leaves_the_random_state(small_job: Build) -> None:
    lead_cfg, _ = small_job()
    torch.manual_seed(99)
    before = torch.random.get_rng_state()
    load_party(lead_cfg)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_threads_are_set_only_when_asked(small_job: Build, threads_kept: int) -> None:
    lead_cfg, _ = small_job()
    load_party(lead_cfg, threads=True)
    assert torch.get_num_threads() == 1


def test_zero_threads_share_the_cores_among_workers(small_job: Build, threads_kept: int) -> None:
    lead_cfg, _ = small_job()
    cfg = dataclasses.replace(lead_cfg, train=dataclasses.replace(lead_cfg.train, threads=0))
    cores = len(os.sched_getaffinity(0))
    assert configure_threads(cfg) == cores == torch.get_num_threads()
    two = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, workers=2))
    assert configure_threads(two) == max(1, cores // 2) == torch.get_num_threads()


def test_the_group_is_given_at_construction(small_job: Build) -> None:
    lead_cfg, _ = small_job()
    group = join_group(
        WorkerContext(0, 1, "127.0.0.1", 1, 2),
        PlaintextSecurity(),
        job_id=lead_cfg.job.id,
        role="leader",
        timeout=1.0,
        party_key=None,
    )
    try:
        party = load_party(lead_cfg, group=group)
        assert party.group is group
        assert load_party(lead_cfg).group is None
    finally:
        group.close()
