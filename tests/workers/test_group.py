"""A real 2-process gloo group on loopback: sealed DDP equals one process on the whole batch.

One spawn runs every scenario in order (join, sealed broadcast, 3 DDP steps, all_gather with
different first dimensions, agree and its refusal, a shape refusal, then a tampered bucket that
must stop backward), because starting PyTorch processes is the slow part.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from torch.multiprocessing.spawn import spawn

from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import ConfigError
from cvfl.workers import WorkerContext, join_group
from tests.workers import ddp_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("group")
    # torch leaves spawn unannotated
    spawn(ddp_worker.run, args=(str(out), free_port(), free_port()), nprocs=2, join=True)  # type: ignore[no-untyped-call]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_three_sealed_steps_equal_one_process_on_the_whole_batch(
    ranks: list[dict[str, Any]],
) -> None:
    for result in ranks:
        assert result["buckets"] > 3  # several buckets per step, each sealed
        assert result["hook_steps"] == result["buckets"]
        for got, want in zip(result["params"], result["reference"], strict=True):
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-6
    assert ranks[0]["params"] == ranks[1]["params"]


def test_gloo_never_carries_plaintext_gradients_or_parameters(
    ranks: list[dict[str, Any]],
) -> None:
    for result in ranks:
        assert result["plain_bytes"] > 1000
        assert result["bucket_sizes_ok"]
        assert result["sent_bytes"] > result["plain_bytes"]
        assert result["control_leaks"] > 0
        assert result["leaks"] == 0
        assert not result["initial_params_in_clear"]


def test_all_gather_with_different_first_dimensions(ranks: list[dict[str, Any]]) -> None:
    expected = [[[0.0, 1.0, 2.0]], [[100.0, 101.0, 102.0], [103.0, 104.0, 105.0]]]
    assert ranks[0]["gathered"] == ranks[1]["gathered"] == expected


def test_agree_refusal_names_ranks_and_values(ranks: list[dict[str, Any]]) -> None:
    for result in ranks:
        refusal = result["agree_refusal"]
        assert refusal["type"] == "ProtocolError" and refusal["code"] == "workers.disagree"
        message = refusal["message"]
        assert "ranks [1] differ" in message
        assert "resume step: expected 0000000000000000…, seen rank 1: 0101010101010101…" in message


def test_all_gather_refuses_another_trailing_shape(ranks: list[dict[str, Any]]) -> None:
    assert ranks[0]["shape_refusal"]["code"] == "workers.gather_shape"
    assert (
        "rank 1's dtype and trailing shape: expected torch.float32 (3,)"
        in (ranks[0]["shape_refusal"]["message"])
    )
    assert "seen torch.float32 (3,)" in ranks[1]["shape_refusal"]["message"]


def test_tampered_bucket_stops_backward_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    step, index = ranks[1]["tampered"]
    for result in ranks:
        error = result["tamper"]
        assert error is not None, "backward() did not raise"
        assert error["type"] == "SealingError" and error["code"] == "workers.bucket"
        assert f"sealed bucket from rank 1, step {step}, bucket {index}" in error["message"]
        assert "authentication tag" in error["message"]


def test_single_worker_group_is_local() -> None:
    group = join_group(
        WorkerContext(0, 1, "127.0.0.1", 1, 2),
        PlaintextSecurity(),
        job_id="j",
        role="leader",
        timeout=1.0,
        party_key=None,
    )
    import torch

    t = torch.ones(2, 3)
    assert [x.tolist() for x in group.all_gather(t, what="x")] == [t.tolist()]
    group.agree(b"anything", what="x")
    group.barrier()
    with pytest.raises(ConfigError) as info:
        group.register_hook(None)  # type: ignore[arg-type]
    assert info.value.code == "workers.single"
    group.close()
    group.close()


def test_failed_rendezvous_is_a_peer_unavailable_error() -> None:
    """Rank 1 enrols with a root that never starts gloo: a clear error, not a torch one."""
    from cvfl.errors import PeerUnavailableError
    from cvfl.workers.enrol import EnrolServer
    from cvfl.workers.serde import EnrolClaim

    own = EnrolClaim("j", "leader", 0, 2)
    party = bytes(range(32))
    root = EnrolServer(PlaintextSecurity(), "127.0.0.1:0", own, bytes(32), party)
    try:
        ctx = WorkerContext(1, 2, "127.0.0.1", free_port(), root.port)
        with pytest.raises(PeerUnavailableError) as info:
            join_group(
                ctx,
                PlaintextSecurity(),
                job_id="j",
                role="leader",
                timeout=2.0,
                party_key=party,
            )
    finally:
        root.stop(0)
    assert info.value.code == "workers.rendezvous"
    assert f"rank 1: the gloo rendezvous at tcp://127.0.0.1:{ctx.master_port} failed" in str(
        info.value
    )
    import torch.distributed as dist

    assert not dist.is_initialized()
