"""A misbehaving or vanishing peer ends the alignment with a clear error and no output file."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import rbcl
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import AlignmentError, CvflError, PeerUnavailableError
from cvfl.psi import AlignJob, PsiConfig, align, serde
from cvfl.wire import psi_pb2, psi_pb2_grpc

from .conftest import psi_config, write_table

IDENTITY = bytes(32)
NON_CANONICAL = b"\xff" * 32
TWIST = (2).to_bytes(32, "little")  # u = 2 lies on Curve25519's twist


def x25519_point() -> bytes:
    """A point of Curve25519's prime-order subgroup (an X25519 public key)."""
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


POINTS = {"x25519": x25519_point, "ristretto255": rbcl.crypto_core_ristretto255_random}
GOOD = x25519_point
# (group, bad point, what the refusal says)
BAD_POINTS = [
    ("ristretto255", NON_CANONICAL, "not a valid ristretto255 group element"),
    ("ristretto255", IDENTITY, "not a valid ristretto255 group element"),
    ("x25519", NON_CANONICAL, "not a canonical Curve25519 u-coordinate"),
    ("x25519", IDENTITY, "small order"),
    ("x25519", TWIST, "twist"),
]


class Leader:
    """A real leader in a thread; ``error`` holds what it raised."""

    def __init__(self, tmp: Path, ids: list[str], **cfg: object) -> None:
        path = write_table(tmp / "leader.parquet", ids, "l")
        self.cfg: PsiConfig = psi_config(tmp, "leader", timeout_s=10, **cfg)
        self.job = AlignJob("job-1", "leader", path, "id", "127.0.0.1:0")
        self.port: int = 0
        self.error: BaseException | None = None
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()
        assert self._bound.wait(10)

    def _run(self) -> None:
        def bound(port: int) -> None:
            self.port = port
            self._bound.set()

        try:
            align(self.job, self.cfg, PlaintextSecurity(), keys=None, on_bound=bound)
        except BaseException as exc:
            self.error = exc
        finally:
            self._bound.set()

    def join(self) -> BaseException | None:
        self._thread.join(30)
        assert not self._thread.is_alive()
        return self.error


class FakeFollower:
    """Speaks the wire protocol by hand; frames to send are queued, received ones recorded."""

    def __init__(self, port: int, group: str = "x25519") -> None:
        self.group = group
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.out: queue.Queue[psi_pb2.PsiFrame | None] = queue.Queue()
        self.call = psi_pb2_grpc.PsiStub(self.channel).Exchange(self._frames(), timeout=20)
        self.received: queue.Queue[psi_pb2.PsiFrame | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _frames(self) -> Iterator[psi_pb2.PsiFrame]:
        while (frame := self.out.get()) is not None:
            yield frame

    def _read(self) -> None:
        try:
            for frame in self.call:
                self.received.put(frame)
        except grpc.RpcError:
            pass
        self.received.put(None)

    def hello(self, count: int, group: str | None = None) -> None:
        hello = serde.PsiHello("job-1", "follower", count, "ecdh", 7, group or self.group)
        self.out.put(serde.hello_to_proto(hello))

    def until(self, kind: str) -> psi_pb2.PsiFrame | None:
        while (frame := self.received.get(timeout=20)) is not None:
            if frame.WhichOneof("body") == kind:
                return frame
        return None

    def close(self) -> None:
        self.out.put(None)
        self.channel.close()


def _expect(leader: Leader, code: str, *words: str) -> CvflError:
    error = leader.join()
    assert isinstance(error, AlignmentError), repr(error)
    assert error.code == code, error.message
    for word in words:
        assert word in error.message
    assert not leader.cfg.output.exists(), "partial output left behind"
    assert not leader.cfg.report_path.exists()
    return error


@pytest.mark.parametrize(
    ("group", "bad", "why"),
    BAD_POINTS,
    ids=["ristretto-non-canonical", "ristretto-identity", "non-canonical", "zero", "twist"],
)
def test_off_group_point_names_batch_and_index(tmp: Path, group: str, bad: bytes, why: str) -> None:
    leader = Leader(tmp, ["a", "b"], group=group)
    peer = FakeFollower(leader.port, group)
    peer.hello(5)
    good = POINTS[group]
    peer.out.put(serde.batch_to_proto(0, good() + good()))
    assert peer.until("ret") is not None
    peer.out.put(serde.batch_to_proto(1, good() + bad + good()))
    abort = peer.until("abort")
    peer.close()
    _expect(leader, "psi.bad_point", "batch 1 item 1", why)
    assert abort is not None and "batch 1 item 1" in abort.abort.message


def test_a_peer_in_another_group_is_refused_at_the_hello(tmp: Path) -> None:
    leader = Leader(tmp, ["a"])
    peer = FakeFollower(leader.port)
    peer.hello(1, group="ristretto255")
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.hello", "peer hello group: expected x25519, seen ristretto255")


def test_more_items_than_announced(tmp: Path) -> None:
    leader = Leader(tmp, ["a", "b"])
    peer = FakeFollower(leader.port)
    peer.hello(2)
    peer.out.put(serde.batch_to_proto(0, GOOD() + GOOD() + GOOD()))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.count", "at most 2 (announced)", "seen 3")


def test_payload_not_whole_points(tmp: Path) -> None:
    leader = Leader(tmp, ["a"])
    peer = FakeFollower(leader.port)
    peer.hello(2)
    peer.out.put(serde.batch_to_proto(0, GOOD() + b"\x01\x02"))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.bad_point", "batch 0")


def test_bad_answer_to_our_batch(tmp: Path) -> None:
    leader = Leader(tmp, ["a", "b", "c"])
    peer = FakeFollower(leader.port)
    peer.hello(0)
    batch = peer.until("batch")
    assert batch is not None
    n = len(batch.batch.points) // 32
    peer.out.put(serde.return_to_proto(0, b"".join(GOOD() for _ in range(n - 1)) + NON_CANONICAL))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.bad_point", f"answer batch 0 item {n - 1}")


def test_wrong_job_is_refused_in_hello(tmp: Path) -> None:
    leader = Leader(tmp, ["a"])
    peer = FakeFollower(leader.port)
    hello = serde.PsiHello("other-job", "follower", 1, "ecdh", 7, "x25519")
    peer.out.put(serde.hello_to_proto(hello))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.hello", "job_id: expected job-1, seen other-job")


def test_peer_disconnecting_midway(tmp: Path) -> None:
    leader = Leader(tmp, [f"id{i}" for i in range(30)])
    peer = FakeFollower(leader.port)
    peer.hello(10)
    peer.out.put(serde.batch_to_proto(0, GOOD() + GOOD()))
    assert peer.until("ret") is not None
    peer.call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves RpcContext.cancel untyped
    peer.close()
    _expect(leader, "psi.peer_lost", "disconnected midway")


def test_follower_sees_leader_vanish(tmp: Path) -> None:
    """A follower whose leader drops the stream midway fails cleanly, with no output."""
    server = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(2))

    class Vanishing(psi_pb2_grpc.PsiServicer):
        def Exchange(self, request_iterator, context):  # type: ignore[no-untyped-def]
            yield serde.hello_to_proto(serde.PsiHello("job-1", "leader", 5, "ecdh", 7, "x25519"))
            yield serde.batch_to_proto(0, GOOD())
            next(request_iterator)
            context.abort(grpc.StatusCode.UNAVAILABLE, "gone")

    psi_pb2_grpc.add_PsiServicer_to_server(Vanishing(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        path = write_table(tmp / "follower.parquet", ["a", "b"], "f")
        cfg = psi_config(tmp, "follower", timeout_s=10)
        job = AlignJob("job-1", "follower", path, "id", f"127.0.0.1:{port}")
        with pytest.raises(AlignmentError) as err:
            align(job, cfg, PlaintextSecurity(), keys=None)
        assert err.value.code == "psi.peer_lost"
        assert not cfg.output.exists()
    finally:
        server.stop(None)


def test_no_follower_in_time(tmp: Path) -> None:
    leader = Leader(tmp, ["a"], connect_timeout_s=0.3)
    error = leader.join()
    assert isinstance(error, PeerUnavailableError)
    assert not leader.cfg.output.exists()
