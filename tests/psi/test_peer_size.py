"""The peer's announced set size is capped before any work; aborts never carry local details.

Real leaders (and followers) in threads, against hand-driven peers over real gRPC on 127.0.0.1.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import (
    AlignmentError,
    ConfigError,
    CvflError,
    DataError,
    ProtocolError,
    SealingError,
)
from cvfl.psi import AlignJob, PsiConfig, align, serde
from cvfl.psi.stream import check_peer_size, internal
from cvfl.wire import psi_pb2, psi_pb2_grpc

from .conftest import psi_config, write_table
from .test_fast_faults import INSECURE, _keyed_peer
from .test_peer_faults import GOOD, FakeFollower, Leader, _expect

HUGE = 10**9


def _frames_until_end(peer: FakeFollower) -> list[str]:
    kinds = []
    while (frame := peer.received.get(timeout=20)) is not None:
        kinds.append(frame.WhichOneof("body") or "")
    return kinds


# ----- the cap -----------------------------------------------------------------------------------
def test_ecdh_peer_announcing_a_billion_items_is_refused_before_any_work(tmp: Path) -> None:
    leader = Leader(tmp, ["a", "b"])
    peer = FakeFollower(leader.port)
    started = time.monotonic()
    peer.hello(HUGE)
    peer.out.put(serde.batch_to_proto(0, GOOD() + GOOD()))  # never answered
    kinds = _frames_until_end(peer)
    peer.close()
    error = _expect(leader, "psi.peer_too_large", "seen 1000000000")
    assert time.monotonic() - started < 10
    assert "at most 8 (4 x this party's 2 items; [psi] max_peer_items allows more)" in error.message
    # At most the leader's hello (already queued when ours arrived), then the abort: none of
    # its points, no answer to ours.
    assert kinds in (["hello", "abort"], ["abort"]), kinds


def test_ecdh_explicit_limit_allows_up_to_it(tmp: Path) -> None:
    leader = Leader(tmp, ["a"], max_peer_items=3)
    peer = FakeFollower(leader.port)
    peer.hello(3)
    assert peer.until("batch") is not None  # accepted: the leader sends its points
    peer.close()
    leader.join()

    again = tmp / "again"
    again.mkdir()
    leader = Leader(again, ["a"], max_peer_items=3)
    peer = FakeFollower(leader.port)
    peer.hello(4)
    abort = peer.until("abort")
    peer.close()
    _expect(leader, "psi.peer_too_large", "at most 3 ([psi] max_peer_items), seen 4")
    assert abort is not None and abort.abort.code == "psi.peer_too_large"
    assert "seen 4" in abort.abort.message


class _BigLeader(psi_pb2_grpc.PsiServicer):
    """A fake leader announcing a huge set; records what the follower sends."""

    def __init__(self) -> None:
        self.seen: queue.Queue[str] = queue.Queue()

    def Exchange(
        self, request_iterator: Iterator[psi_pb2.PsiFrame], context: grpc.ServicerContext
    ) -> Iterator[psi_pb2.PsiFrame]:
        yield serde.hello_to_proto(serde.PsiHello("job-1", "leader", HUGE, "ecdh", 7, "x25519"))
        for frame in request_iterator:
            self.seen.put(frame.WhichOneof("body") or "")


def test_follower_refuses_a_huge_leader_and_sends_none_of_its_points(tmp: Path) -> None:
    servicer = _BigLeader()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    psi_pb2_grpc.add_PsiServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        path = write_table(tmp / "follower.parquet", ["a", "b", "c"], "f")
        cfg = psi_config(tmp, "follower", timeout_s=10)
        job = AlignJob("job-1", "follower", path, "id", f"127.0.0.1:{port}")
        with pytest.raises(AlignmentError) as err:
            align(job, cfg, PlaintextSecurity(), keys=None)
        assert err.value.code == "psi.peer_too_large"
        assert "at most 12" in err.value.message and "seen 1000000000" in err.value.message
        assert not cfg.output.exists()
    finally:
        server.stop(2).wait()  # let the fake leader read what the follower sent
    seen = []
    while not servicer.seen.empty():
        seen.append(servicer.seen.get())
    # None of the follower's points, whatever of its hello and abort arrived before the end.
    assert set(seen) <= {"hello", "abort"}, seen


def test_fast_mode_peer_announcing_a_billion_items_is_refused_before_any_tag(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a", "b", "c"])
    peer.out.put(serde.announce_to_proto(HUGE))
    kinds = _frames_until_end(peer)
    peer.close()
    _expect(leader, "psi.peer_too_large", "at most 12 (4 x this party's 3 items", "seen 1000000000")
    assert "batch" not in kinds and kinds[-1] == "abort", kinds


def test_fast_mode_explicit_limit(tmp: Path) -> None:
    leader = Leader(tmp, ["a"], max_peer_items=2, **INSECURE)
    peer = FakeFollower(leader.port)
    peer.out.put(serde.hello_to_proto(serde.PsiHello("job-1", "follower", 0, "fast", 7)))
    assert peer.until("key") is not None
    from cvfl.psi.fast.key import KeyExchange

    peer.out.put(serde.key_share_to_proto(serde.KeyShare(KeyExchange().public_key, b"", b"")))
    peer.out.put(serde.announce_to_proto(3))
    kinds = _frames_until_end(peer)
    peer.close()
    _expect(leader, "psi.peer_too_large", "at most 2 ([psi] max_peer_items), seen 3")
    assert "batch" not in kinds


@pytest.mark.parametrize(("own", "limit"), [(0, 4), (1, 4), (5, 20)])
def test_default_limit_is_four_times_own(own: int, limit: int) -> None:
    check_peer_size(limit, own, None)
    with pytest.raises(AlignmentError) as info:
        check_peer_size(limit + 1, own, None)
    assert info.value.code == "psi.peer_too_large"
    check_peer_size(10**12, own, 10**12)


@pytest.mark.parametrize("value", [0, -3, True, False, 2.0, "10", [1]])
def test_max_peer_items_must_be_a_positive_integer(tmp: Path, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        PsiConfig.from_toml_table({"output": "a.csv", "max_peer_items": value})
    assert "[psi] max_peer_items: expected" in info.value.message
    with pytest.raises(ConfigError):
        PsiConfig(output=tmp / "a.csv", max_peer_items=value)  # type: ignore[arg-type]


def test_max_peer_items_from_toml() -> None:
    assert PsiConfig.from_toml_table({"output": "a.csv"}).max_peer_items is None
    assert PsiConfig.from_toml_table({"output": "a.csv", "max_peer_items": 7}).max_peer_items == 7


@pytest.mark.parametrize("key", ["batch_size", "threads", "window", "spill_threshold"])
def test_integers_are_not_booleans(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[psi\] {key}: expected a whole number, seen False"):
        PsiConfig.from_toml_table({"output": "a.csv", key: False})


# ----- what an abort tells the peer ---------------------------------------------------------------
SECRET_PATH = "/srv/private/customers-2026.parquet"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            DataError(f"{SECRET_PATH}: column 'id' row 17: missing id", code="data.null"),
            "a local data error",
        ),
        (ConfigError(f"{SECRET_PATH}: bad", code="config.value"), "a local configuration error"),
        (
            SealingError(f"{SECRET_PATH}.spill: tampered", code="sealing.tampered"),
            "a local sealing error",
        ),
        (
            AlignmentError(
                f"{SECRET_PATH}: 2 rows repeat an id (first at rows 4)", code="psi.duplicates"
            ),
            "its table repeats ids",
        ),
        (
            internal("sending own batches", OSError(28, "No space left", SECRET_PATH)),
            "an internal failure",
        ),
        (ProtocolError(f"{SECRET_PATH}", code="protocol.x"), "a local error"),
    ],
)
def test_local_errors_reach_the_peer_as_code_and_kind_only(error: CvflError, reason: str) -> None:
    frame = serde.abort_to_proto(error)
    assert frame.abort.code == error.code
    assert frame.abort.message == f"{reason} (details in its log)"
    received = serde.abort_from_proto(frame.abort, "leader")
    assert received.code == "psi.peer_abort"
    assert received.message == f"the leader stopped: [{error.code}] {reason} (details in its log)"


def test_refusals_of_the_peer_keep_their_reason_cut_short() -> None:
    error = AlignmentError(
        "peer batch 3 item 1: not on the curve" + "!" * 1000, code="psi.bad_point"
    )
    message = serde.abort_to_proto(error).abort.message
    assert message.startswith("peer batch 3 item 1: not on the curve") and len(message) <= 301


@given(code=st.text(max_size=200), message=st.text(max_size=2000))
def test_a_peers_abort_becomes_a_short_printable_error(code: str, message: str) -> None:
    error = serde.abort_from_proto(psi_pb2.PsiAbort(code=code, message=message), "follower")
    assert error.code == "psi.peer_abort"
    assert error.message.startswith("the follower stopped: [")
    assert error.message.isprintable() and len(error.message) < 420


def test_duplicates_in_fast_mode_reach_the_peer_without_the_path(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a", "b", "a"])
    abort = peer.until("abort")
    peer.close()
    error = _expect(leader, "psi.duplicates")
    assert str(leader.job.data) in error.message  # the local error names the file
    assert abort is not None and abort.abort.code == "psi.duplicates"
    assert abort.abort.message == "its table repeats ids (details in its log)"
    assert str(tmp) not in abort.abort.message


def test_unreadable_ids_in_fast_mode_reach_the_peer_without_the_path(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a", None, "c"])  # type: ignore[list-item]
    abort = peer.until("abort")
    peer.close()
    error = leader.join()
    assert isinstance(error, DataError) and error.code == "data.null"
    assert abort is not None and abort.abort.code == "data.null"
    assert abort.abort.message == "a local data error (details in its log)"


def test_the_receiving_side_names_the_role_code_and_reason(tmp: Path) -> None:
    """A real leader with duplicate ids in fast mode, a real follower: what the follower sees."""
    lpath = write_table(tmp / "leader.parquet", ["a", "a"], "l")
    fpath = write_table(tmp / "follower.parquet", ["a"], "f")
    port: list[int] = []
    bound = threading.Event()
    errors: dict[str, BaseException] = {}

    def on_bound(p: int) -> None:
        port.append(p)
        bound.set()

    def lead() -> None:
        job = AlignJob("job-1", "leader", lpath, "id", "127.0.0.1:0")
        try:
            align(
                job,
                psi_config(tmp, "leader", **INSECURE),
                PlaintextSecurity(),
                keys=None,
                on_bound=on_bound,
            )
        except BaseException as exc:
            errors["leader"] = exc
            bound.set()

    thread = threading.Thread(target=lead)
    thread.start()
    assert bound.wait(20) and port
    job = AlignJob("job-1", "follower", fpath, "id", f"127.0.0.1:{port[0]}")
    with pytest.raises(AlignmentError) as err:
        align(job, psi_config(tmp, "follower", **INSECURE), PlaintextSecurity(), keys=None)
    thread.join(30)
    assert err.value.code == "psi.peer_abort"
    assert err.value.message == (
        "the leader stopped: [psi.duplicates] its table repeats ids (details in its log)"
    )
    assert isinstance(errors["leader"], AlignmentError)
    assert errors["leader"].code == "psi.duplicates"
