"""[data] reader = "stream": split training equals its centralized twin and resumes exactly."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from cvfl.errors import ConfigError, CvflError, PeerStoppedError, ProtocolError, SealingError
from cvfl.models.export import load_half
from cvfl.sealing import write_sealed
from cvfl.train import TrainResult, load_party, train_centralized
from cvfl.train.binding import training_binding
from cvfl.train.config import JobConfig
from cvfl.train.party import checkpoint_store
from cvfl.train.stop import STOPPED
from cvfl.train.stream import StreamTable
from cvfl.train.stream_schedule import StreamSchedule
from cvfl.train.training_tables import read_training_table
from tests.conftest import keys_of
from tests.train.helpers import run_pair
from tests.train.test_cuts import elsewhere
from tests.train.test_pipeline import _exports, _same, _StopAt

Build = Callable[..., tuple[JobConfig, JobConfig]]
# small blocks and windows: batches straddle windows, and blocks span row groups
STREAM = {"data__reader": "stream", "data__block_rows": 40, "data__shuffle_blocks": 3}


def _regroup(cfgs: tuple[JobConfig, JobConfig], rows: int, *, sealed: bool) -> None:
    """Rewrite both tables with ``rows``-row groups (sealed like an aligned table if asked)."""
    for cfg in cfgs:
        path = cfg.data.path
        table = pq.read_table(path)
        pq.write_table(table, path, row_group_size=rows)
        if sealed:
            write_sealed(path, path.read_bytes(), purpose="aligned-table", keys=keys_of(cfg))


@pytest.mark.parametrize("sealed", [False, True])
def test_streamed_split_training_equals_its_centralized_twin(
    small_job: Build, sealed: bool
) -> None:
    cfgs = small_job(**STREAM, train__optimizer="sgd", train__lr=0.05)
    _regroup(cfgs, 64, sealed=sealed)
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    leader, follower = load_party(cfgs[0]), load_party(cfgs[1])
    assert isinstance(leader.table, StreamTable)
    combined, central = train_centralized(leader, follower)
    assert central.steps == lead.steps == follow.steps == leader.schedule.total_steps > 0
    split_leader = load_half(lead.export, keys_of(cfgs[0])).tensors  # type: ignore[arg-type]
    split_follower = load_half(follow.export, keys_of(cfgs[1])).tensors  # type: ignore[arg-type]
    for name, value in combined.leader.state_dict().items():
        torch.testing.assert_close(split_leader[name], value, atol=1e-5, rtol=0)
    for name, value in combined.follower.state_dict().items():
        torch.testing.assert_close(split_follower[name], value, atol=1e-5, rtol=0)
    assert lead.metrics is not None and central.metrics is not None
    assert abs(lead.metrics.auc - central.metrics.auc) < 1e-6
    untouched = load_party(cfgs[0]).model.state_dict()
    assert any(not torch.equal(untouched[k], v) for k, v in split_leader.items())


def test_a_stopped_and_resumed_streamed_run_ends_where_an_uninterrupted_one_does(
    small_job: Build, tmp_path: Path
) -> None:
    settings = STREAM | {"train__checkpoint_every": 5, "train__checkpoint_every_s": 0}
    whole = tuple(elsewhere(c, tmp_path / "whole") for c in small_job(**settings))
    expected = _exports(*run_pair(*whole), whole)  # type: ignore[arg-type]
    cfgs = small_job(**settings)
    stop = threading.Event()
    lead, follow = run_pair(*cfgs, leader_progress=_StopAt(13, stop), leader_stop=stop)
    assert isinstance(lead, CvflError) and lead.code == STOPPED
    assert isinstance(follow, PeerStoppedError)
    for cfg in cfgs:
        store = checkpoint_store(load_party(cfg))
        assert max(s.step for s in store.inventory() if s.peer_digest) == 10
    lead, follow = run_pair(*cfgs)
    assert isinstance(lead, TrainResult), lead
    assert lead.session_examples < lead.examples  # it did resume, not start over
    assert _same(_exports(lead, follow, cfgs), expected)


def test_the_streamed_table_reads_what_the_memory_reader_reads(small_job: Build) -> None:
    cfgs = small_job(**STREAM)
    _regroup(cfgs, 70, sealed=True)
    leader = load_party(cfgs[0])
    memory = read_training_table(cfgs[0], leader.artifacts)
    table = leader.table
    assert isinstance(table, StreamTable)
    assert table.labels is not None and memory.labels is not None
    assert np.array_equal(table.labels, memory.labels)
    rows = np.random.default_rng(1).permutation(memory.rows)[:100]
    ids, features = table.take(rows, planned=False)
    assert ids == [memory.ids[i] for i in rows]
    assert np.array_equal(features, memory.features[rows])
    for start in range(0, memory.rows - 90, 45):  # overlapping reads reuse decoded blocks
        rows = np.arange(start, start + 90)
        ids, features = table.take(rows, planned=False)
        assert ids == [memory.ids[i] for i in rows]
        assert np.array_equal(features, memory.features[rows])
    # the binding's data digest is the in-memory one; the reader is a shared term
    streamed = training_binding(cfgs[0], table)
    in_memory = training_binding(cfgs[0], memory)
    assert streamed.own["data_digest"] == in_memory.own["data_digest"]
    assert streamed.own["order_fingerprint"] == in_memory.own["order_fingerprint"]
    assert (streamed.shared["reader"], streamed.shared["block_rows"]) == ("stream", 40)
    assert "reader" not in training_binding(small_job()[0], memory).shared


def test_parties_that_disagree_on_the_reader_are_refused(small_job: Build) -> None:
    lead_cfg, _ = small_job(**STREAM)
    _, follow_cfg = small_job()
    lead, follow = run_pair(lead_cfg, follow_cfg)
    assert isinstance(lead, ProtocolError) and isinstance(follow, ProtocolError)
    assert "reader: expected stream, seen (none)" in lead.message, lead.message


def test_a_csv_table_is_refused_naming_the_reader(small_job: Build, tmp_path: Path) -> None:
    import pyarrow.csv as pacsv

    lead_cfg, _ = small_job(**STREAM)
    csv = tmp_path / "leader.csv"
    pacsv.write_csv(pq.read_table(lead_cfg.data.path), csv)
    lead_cfg, _ = small_job(**STREAM, data__path=str(csv))
    with pytest.raises(ConfigError) as caught:
        load_party(lead_cfg)
    assert "[data] reader" in caught.value.message and ".parquet" in caught.value.message


def test_each_worker_reads_only_its_own_blocks_through_the_plan(small_job: Build) -> None:
    lead_cfg, _ = small_job(**STREAM, train__workers=3, train__batch_size=32)
    parties = [load_party(lead_cfg, worker=w) for w in range(3)]
    memory = read_training_table(lead_cfg, parties[0].artifacts)
    for party in parties:
        party.begin(7)  # as a resume after step 7 does
    schedule = parties[0].schedule
    assert isinstance(schedule, StreamSchedule) and schedule.workers == 3
    split_steps = 0
    for step in schedule.steps(7):
        parts = [party.my_rows(step.rows) for party in parties]
        assert sorted(np.concatenate(parts).tolist()) == sorted(step.rows.tolist())
        owned = all(schedule.owns(rows, w) for w, rows in enumerate(parts))
        split_steps += not owned
        for w, (party, rows) in enumerate(zip(parties, parts, strict=True)):
            ids, inputs = party.batch(rows, step=True)
            assert ids == [memory.ids[i] for i in rows]
            assert np.array_equal(inputs.numpy(), memory.features[rows])
            table = party.table
            assert isinstance(table, StreamTable) and len(table._windows) <= 3  # bounded
            for window in table._windows.values():  # the plan holds this worker's blocks only
                assert (window.blocks % 3 == w).all()
    assert split_steps <= schedule.epochs  # only a short last batch may leave a worker empty


def test_stream_windows_hold_every_workers_blocks_evenly(small_job: Build) -> None:
    lead_cfg, _ = small_job(**STREAM, train__workers=3, train__batch_size=32)
    one_cfg, _ = small_job(**STREAM)
    schedule = load_party(lead_cfg).schedule
    one = load_party(one_cfg).schedule
    assert isinstance(schedule, StreamSchedule) and isinstance(one, StreamSchedule)
    for epoch in range(2):
        windows = schedule.windows_of(epoch)
        order = np.concatenate(windows)
        assert sorted(order.tolist()) == list(range(schedule.blocks))
        for blocks in windows[:-1]:  # shuffle_blocks (3) blocks of each worker
            assert sorted((blocks % 3).tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert schedule.digest() != one.digest()  # both parties must run as many workers


def test_unknown_reader_is_refused(small_job: Build) -> None:
    with pytest.raises(ConfigError) as caught:
        small_job(data__reader="mmap")
    assert "reader" in caught.value.message and "mmap" in caught.value.message


def test_a_tampered_sealed_table_is_refused_by_the_streamed_reader(small_job: Build) -> None:
    cfgs = small_job(**STREAM)
    _regroup(cfgs, 64, sealed=True)
    path = cfgs[1].data.path
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 1  # a chunk in the middle: some row group's column data
    path.write_bytes(bytes(blob))
    with pytest.raises(SealingError) as caught:
        load_party(cfgs[1]).binding  # noqa: B018 - the digest pass reads every row group
    assert caught.value.code == "sealing.chunk_tampered"
