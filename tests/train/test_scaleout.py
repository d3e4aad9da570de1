"""Scale-out pieces of the training loops: worker addresses, row blocks, assignments, scores."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import ConfigError, ProtocolError
from cvfl.train import load_party
from cvfl.train.config import JobConfig, PeerSection, TrainSection
from cvfl.train.scaleout import interleave
from cvfl.train.steps import assign_message, assigned_rows
from tests.train.helpers import run_pair

Build = Callable[..., tuple[JobConfig, JobConfig]]


def test_worker_addresses_shift_ports_and_port_files(tmp_path: Path) -> None:
    peer = PeerSection(
        listen="0.0.0.0:7788", connect="leader.example:7788", port_file=tmp_path / "p"
    )
    assert peer.for_worker(0) is peer
    second = peer.for_worker(2)
    assert (second.listen, second.connect) == ("0.0.0.0:7790", "leader.example:7790")
    assert second.port_file == tmp_path / "p.2"
    assert PeerSection(listen="127.0.0.1:0").for_worker(1).listen == "127.0.0.1:0"


def test_worker_placeholder_names_one_host_per_worker() -> None:
    peer = PeerSection(connect="leader-{worker}.example.org:7788")
    assert peer.for_worker(0).connect == "leader-0.example.org:7788"
    assert peer.for_worker(3).connect == "leader-3.example.org:7788"
    assert peer.for_worker(3).listen == "127.0.0.1:7791"


def test_worker_port_past_65535_is_refused() -> None:
    with pytest.raises(ConfigError, match="at most 65535, seen 65536"):
        PeerSection(listen="127.0.0.1:65535").for_worker(1)


class WorkerFields(TypedDict, total=False):
    """The [train] settings that the workers check involves."""

    workers: int
    batch_size: int


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"workers": 0}, "workers: expected 1 to 256, seen 0"),
        (
            {"workers": 4, "batch_size": 2},
            "batch_size: expected at least [train] workers (4), seen 2",
        ),
    ],
)
def test_workers_setting_is_validated(fields: WorkerFields, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        TrainSection(**fields)


@given(
    rows=st.lists(st.integers(0, 99), max_size=40, unique=True),
    step=st.integers(1, 10**6),
)
def test_assignment_round_trip(rows: list[int], step: int) -> None:
    mask = np.ones(100, dtype=bool)
    message = assign_message(step, np.array(rows, dtype=np.int64))
    assert assigned_rows(message.assign, step, 40, mask).tolist() == rows


@given(payload=st.binary(max_size=64))
def test_any_assignment_payload_is_decoded_or_refused(payload: bytes) -> None:
    message = assign_message(1, np.zeros(0, dtype=np.int64))
    message.assign.rows = payload
    try:
        rows = assigned_rows(message.assign, 1, 4, np.ones(10, dtype=bool))
    except ProtocolError as exc:
        assert exc.code in ("protocol.assign",)
    else:
        assert len(rows) <= 4 and all(0 <= r < 10 for r in rows)


def test_assignment_refusals_name_what_failed() -> None:
    mask = np.ones(10, dtype=bool)
    mask[3] = False  # a held-out row
    cases = [
        (assign_message(2, np.array([1])), "assigned step: expected 1, seen 2"),
        (assign_message(1, np.array([1, 2, 4])), "at most 2, seen 3"),
        (assign_message(1, np.array([1, 12])), "training row of the 10-row aligned table, seen 12"),
        (assign_message(1, np.array([3])), "seen 3"),
    ]
    for message, needle in cases:
        with pytest.raises(ProtocolError) as info:
            assigned_rows(message.assign, 1, 2, mask)
        assert needle in info.value.message


def test_interleave_restores_the_held_out_order() -> None:
    sizes = [3, 3, 3, 2, 1]
    batches = torch.arange(12).split(sizes)  # type: ignore[no-untyped-call]  # torch stub
    parts = [torch.cat(batches[w::2]) for w in range(2)]
    assert interleave(parts, sizes).tolist() == list(range(12))
    assert interleave([torch.arange(12)], sizes).tolist() == list(range(12))
    with pytest.raises(ProtocolError, match="held-out rows from worker 1: expected 5, seen 4"):
        interleave([parts[0], parts[1][:4]], sizes)


def test_worker_blocks_partition_every_step(small_job: Build) -> None:
    lead_cfg, _ = small_job(train__workers=3, train__batch_size=32)
    parties = [load_party(lead_cfg, worker=w) for w in range(3)]
    for step in parties[0].schedule.steps():
        blocks = [p.my_rows(step.rows) for p in parties]
        assert np.concatenate(blocks).tolist() == step.rows.tolist()
    evals = [i for p in parties for i, _ in p.my_eval_batches()]
    assert sorted(evals) == list(range(len(list(parties[0].schedule.eval_batches()))))


def test_different_worker_counts_are_refused_at_the_hello(small_job: Build) -> None:
    lead_cfg, follow_cfg = small_job()
    follow_cfg = dataclasses.replace(
        follow_cfg, train=dataclasses.replace(follow_cfg.train, workers=2)
    )
    lead, follow = run_pair(lead_cfg, follow_cfg)
    for side in (lead, follow):
        assert isinstance(side, ProtocolError), side
        assert "workers: expected 1, seen 2" in side.message or (
            "workers: expected 2, seen 1" in side.message
        )
