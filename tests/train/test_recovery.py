"""Resume negotiation and the checkpoint store."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvfl.bridge.serde import CheckpointState as S
from cvfl.errors import ProtocolError, SealingError
from cvfl.sealing import Artifacts, new_key_file
from cvfl.train.recovery import CheckpointStore, resume_step

D = {n: bytes([n]) * 32 for n in range(1, 9)}


def test_newest_common_step() -> None:
    mine = (S(5, D[1], D[2]), S(10, D[3], D[4]), S(15, D[5]))
    theirs = (S(5, D[2], D[1]), S(10, D[4], D[3]))
    assert resume_step(mine, theirs, "follower") == 10
    assert resume_step(theirs, mine, "leader") == 10
    assert resume_step((), (), "leader") == 0
    assert resume_step((S(15, D[5]),), (), "follower") == 0  # nothing committed: start over


def test_rollback_is_refused() -> None:
    mine = (S(5, D[1], D[2]), S(10, D[3], D[4]))  # we hold the peer's commit of step 10
    theirs = (S(5, D[2], D[1]),)  # ...but the peer now holds only step 5
    with pytest.raises(ProtocolError, match=r"rollback refused.*up to step 5.*step 10") as info:
        resume_step(mine, theirs, "follower")
    assert info.value.code == "protocol.rollback"


def test_swapped_checkpoint_is_refused() -> None:
    mine = (S(10, D[3], D[4]),)
    theirs = (S(10, D[7], D[3]),)  # the peer's step-10 checkpoint is not the one it reported
    with pytest.raises(ProtocolError, match="step 10") as info:
        resume_step(mine, theirs, "leader")
    assert info.value.code == "protocol.checkpoint_digest"


def test_store_round_trip_commit_prune_and_tamper(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "leader", Artifacts(new_key_file(tmp_path / "k")), keep=2)
    digests = {}
    for step in (2, 4, 6):
        digests[step] = store.save(step, f"state {step}".encode())
        store.commit(step, digests[step], D[step])
    assert [s.step for s in store.inventory()] == [4, 6]  # pruned to the newest two
    assert store.inventory()[-1] == S(6, digests[6], D[6])
    assert store.load(6, digests[6]) == b"state 6"
    with pytest.raises(ProtocolError, match="digest"):
        store.load(6, D[1])
    path = tmp_path / "leader-step-000000006.safetensors.sealed"
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SealingError, match="leader-step-000000006"):
        store.load(6, digests[6])
    # A plaintext file planted where a sealed one belongs is refused.
    (tmp_path / "leader-step-000000004.safetensors").write_bytes(b"plain")
    (tmp_path / "leader-step-000000004.safetensors.sealed").unlink()
    with pytest.raises(SealingError, match="expected a sealed file"):
        store.load(4, digests[4])


def test_uncommitted_checkpoint_counts_but_record_less_does_not(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "follower", Artifacts(None))
    store.save(3, b"x")
    assert [s.step for s in store.inventory()] == [3]
    (tmp_path / "follower-step-000000003.json").unlink()  # crash before the record
    assert store.inventory() == ()


def test_a_clean_run_commits_every_checkpoint_on_both_sides(small_job) -> None:  # type: ignore[no-untyped-def]
    from cvfl.sealing import key_provider_from_config
    from cvfl.train import TrainResult
    from tests.train.helpers import run_pair

    # 4 epochs of 15 steps, a checkpoint every 15: the last one falls on the final step, so the
    # leader's digest reaches the follower only while it waits for the end of the session.
    lead_cfg, follow_cfg = small_job(train__epochs=4, train__checkpoint_every=15)
    outcome = run_pair(lead_cfg, follow_cfg)
    assert all(isinstance(r, TrainResult) for r in outcome), outcome
    for cfg in (lead_cfg, follow_cfg):
        assert cfg.sealing is not None
        store = CheckpointStore(
            cfg.job.workdir / "checkpoints",
            cfg.role,
            Artifacts(key_provider_from_config(cfg.sealing)),
        )
        states = store.inventory()
        assert [s.step for s in states] == [30, 45, 60]
        assert all(s.peer_digest for s in states), (cfg.role, states)
