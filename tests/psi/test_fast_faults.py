"""A misbehaving fast-mode peer ends in a clear error and no output file (real gRPC)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvfl.psi import serde
from cvfl.psi.fast.key import KeyExchange

from .test_peer_faults import FakeFollower, Leader, _expect

INSECURE = {"mode": "fast", "insecure_fast_mode": True}


def _keyed_peer(tmp: Path, ids: list[str]) -> tuple[Leader, FakeFollower]:
    """A real leader and a hand-driven follower that completed hello and key share."""
    leader = Leader(tmp, ids, **INSECURE)
    peer = FakeFollower(leader.port)
    peer.out.put(serde.hello_to_proto(serde.PsiHello("job-1", "follower", 0, "fast", 7)))
    assert peer.until("key") is not None
    peer.out.put(serde.key_share_to_proto(serde.KeyShare(KeyExchange().public_key, b"", b"")))
    return leader, peer


def _tags(n: int) -> bytes:
    return os.urandom(32 * n)


def test_more_items_than_announced(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a", "b"])
    peer.out.put(serde.announce_to_proto(2))
    peer.out.put(serde.batch_to_proto(0, _tags(3)))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.count", "at most 2 (announced)", "seen 3")


def test_fewer_items_than_announced_at_done(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a", "b"])
    peer.out.put(serde.announce_to_proto(5))
    peer.out.put(serde.batch_to_proto(0, _tags(2)))
    peer.out.put(serde.done_to_proto(2, 0))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.count", "items the peer sent: expected 5, seen 2")


def test_payload_not_whole_tags(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a"])
    peer.out.put(serde.announce_to_proto(2))
    peer.out.put(serde.batch_to_proto(0, _tags(1) + b"\x01"))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.bad_tag", "batch 0", "33 bytes")


def test_repeated_tag_from_the_peer(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a", "b"])
    tag = _tags(1)
    peer.out.put(serde.announce_to_proto(3))
    peer.out.put(serde.batch_to_proto(0, tag + _tags(1) + tag))
    peer.out.put(serde.done_to_proto(3, 0))
    assert peer.until("done") is not None
    # the leader ends its stream only once it has our done; closing earlier would cancel the
    # call before it reads it (and the leader would see a lost peer instead)
    assert peer.until("end of stream") is None
    peer.close()
    _expect(leader, "psi.bad_tag", "same keyed hash twice")


def test_batch_before_announce(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, ["a"])
    peer.out.put(serde.batch_to_proto(0, _tags(1)))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.protocol", "frame: expected announce, seen batch")


def test_batch_before_key_share(tmp: Path) -> None:
    leader = Leader(tmp, ["a"], **INSECURE)
    peer = FakeFollower(leader.port)
    peer.out.put(serde.hello_to_proto(serde.PsiHello("job-1", "follower", 0, "fast", 7)))
    peer.out.put(serde.batch_to_proto(0, _tags(1)))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.protocol", "frame after hello: expected key, seen batch")


@pytest.mark.parametrize(
    ("public", "words"),
    [(b"\x01" * 31, "length: expected 32, seen 31"), (bytes(32), "a low-order point")],
    ids=["short", "low-order"],
)
def test_bad_public_key(tmp: Path, public: bytes, words: str) -> None:
    leader = Leader(tmp, ["a"], **INSECURE)
    peer = FakeFollower(leader.port)
    peer.out.put(serde.hello_to_proto(serde.PsiHello("job-1", "follower", 0, "fast", 7)))
    assert peer.until("key") is not None
    peer.out.put(serde.key_share_to_proto(serde.KeyShare(public, b"", b"")))
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.bad_key_share", words)


def test_mode_mismatch_refused_in_hello(tmp: Path) -> None:
    leader = Leader(tmp, ["a"], **INSECURE)
    peer = FakeFollower(leader.port)
    peer.hello(1)  # an ECDH hello
    assert peer.until("abort") is not None
    peer.close()
    _expect(leader, "psi.hello", "mode: expected fast, seen ecdh")


def test_peer_disconnecting_midway(tmp: Path) -> None:
    leader, peer = _keyed_peer(tmp, [f"id{i}" for i in range(30)])
    peer.out.put(serde.announce_to_proto(10))
    peer.out.put(serde.batch_to_proto(0, _tags(2)))
    assert peer.until("announce") is not None
    peer.call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves RpcContext.cancel untyped
    peer.close()
    _expect(leader, "psi.peer_lost", "disconnected midway")
