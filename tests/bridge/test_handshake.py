"""The session hello on a scripted link: agreement, and every refusal named on both sides."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cvfl.attestation.terms import JobTerms
from cvfl.bridge.fields import encode_fields
from cvfl.bridge.handshake import (
    PROTOCOL_VERSION,
    follower_handshake,
    hello_mismatches,
    leader_handshake,
)
from cvfl.bridge.security import PeerInfo
from cvfl.bridge.serde import Hello, TensorSpec, hello_to_proto
from cvfl.errors import PeerStoppedError, PeerUnavailableError, ProtocolError
from cvfl.wire import bridge_pb2 as pb
from tests.bridge.scripted import FakeClock, ScriptedLink

TERMS = encode_fields({"job_id": "job-1", "seed": 7, "learning_rate": 0.1, "epochs": 2})
CUT = (TensorSpec("act", "float32", (64,)),)


def hello(role: str, **changes: Any) -> Hello:
    base = Hello(
        protocol_version=PROTOCOL_VERSION,
        job_id="job-1",
        role=role,
        cut_layer=CUT,
        batch_size=256,
        seed=7,
        id_order_fingerprint=bytes(range(32)),
        last_committed_step=0,
        nonce=b"n" * 16,
        num_rows=1000,
        schedule_digest=b"s" * 32,
        software_version="1.0",
        training_terms=TERMS,
    )
    return replace(base, **changes)


def envelope(h: Hello) -> pb.Envelope:
    return pb.Envelope(hello=hello_to_proto(h))


def test_the_leader_agrees_and_answers_with_its_hello() -> None:
    link = ScriptedLink(FakeClock())
    follower = hello("follower", nonce=b"f" * 16, software_version="0.9")
    link.feed(
        pb.Envelope(resume=pb.Resume(session_id=b"old")),
        pb.Envelope(heartbeat=pb.Heartbeat()),
        envelope(follower),
    )

    theirs = leader_handshake(link, hello("leader"), timeout=10)

    assert theirs == follower
    sent = link.sent()
    assert [e.WhichOneof("body") for e in sent] == ["resume", "hello"]
    assert sent[0].resume == pb.Resume()  # a stale session is told to start over
    assert (sent[1].hello.role, sent[1].hello.job_id) == ("leader", "job-1")
    assert not link.closed


def test_the_follower_sends_first_then_checks_the_answer() -> None:
    link = ScriptedLink(FakeClock())
    link.feed(envelope(hello("leader")))
    theirs = follower_handshake(link, hello("follower"), timeout=10)
    assert theirs.role == "leader"
    (sent,) = link.sent()
    assert sent.hello.role == "follower"


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"seed": 8}, "seed: expected 7, seen 8"),
        ({"batch_size": 128}, "batch_size: expected 256, seen 128"),
        ({"num_rows": 999}, "num_rows: expected 1000, seen 999"),
        ({"job_id": "job-2"}, "job_id: expected job-1, seen job-2"),
        ({"protocol_version": 99}, f"protocol_version: expected {PROTOCOL_VERSION}, seen 99"),
        ({"workers": 2}, "workers: expected 1, seen 2"),
        (
            {"cut_layer": (TensorSpec("act", "float32", (32,)),)},
            "cut_layer: expected act float32 [64], seen act float32 [32]",
        ),
        (
            {"id_order_fingerprint": bytes(32)},
            "id_order_fingerprint: expected 0001020304050607…, seen 0000000000000000…",
        ),
        ({"schedule_digest": b""}, "schedule_digest: expected 7373737373737373…, seen (none)"),
        (
            {
                "training_terms": encode_fields(
                    {"job_id": "job-1", "seed": 7, "learning_rate": 0.2, "epochs": 2}
                )
            },
            "learning_rate: expected 0.1, seen 0.2",
        ),
        ({"training_terms": b""}, "training_terms: expected the peer's terms, seen none"),
        (
            {"training_terms": b"{not json"},
            "training_terms: expected named plain values, seen malformed",
        ),
    ],
)
def test_the_leader_refuses_a_mismatch_naming_expected_and_seen(
    changes: dict[str, Any], phrase: str
) -> None:
    link = ScriptedLink(FakeClock())
    link.feed(envelope(hello("follower", **changes)))

    with pytest.raises(ProtocolError) as info:
        leader_handshake(link, hello("leader"), timeout=10)

    assert info.value.code == "protocol.hello"
    assert info.value.message.startswith("session hello mismatch: ")
    assert phrase in info.value.message
    (abort,) = link.sent()  # the follower is told why, and no hello is sent
    assert abort.abort.code == "protocol.hello"
    assert phrase in abort.abort.message
    assert link.closed


def test_a_peer_of_the_same_role_is_refused() -> None:
    link = ScriptedLink(FakeClock())
    link.feed(envelope(hello("leader")))
    with pytest.raises(ProtocolError, match="role: expected follower, seen leader"):
        leader_handshake(link, hello("leader"), timeout=10)


def test_every_differing_field_is_named_at_once() -> None:
    problems = hello_mismatches(
        hello("leader"), hello("follower", seed=1, batch_size=2, num_rows=3)
    )
    assert [p.split(":")[0] for p in problems] == ["batch_size", "num_rows", "seed"]


def test_terms_the_hello_compares_itself_are_not_named_twice() -> None:
    terms = encode_fields({"job_id": "job-1", "seed": 8, "learning_rate": 0.1, "epochs": 2})
    problems = hello_mismatches(hello("leader"), hello("follower", seed=8, training_terms=terms))
    assert problems == ["seed: expected 7, seen 8"]


def test_the_follower_refuses_the_leaders_mismatch_and_tells_it() -> None:
    link = ScriptedLink(FakeClock())
    link.feed(envelope(hello("leader", batch_size=64)))
    with pytest.raises(ProtocolError, match="batch_size: expected 256, seen 64") as info:
        follower_handshake(link, hello("follower"), timeout=10)
    assert info.value.code == "protocol.hello"
    sent = link.sent()
    assert [e.WhichOneof("body") for e in sent] == ["hello", "abort"]


def _terms(role: str, sealing: str = "file") -> JobTerms:
    return JobTerms("job-1", role, "train", sealing, False, "ecdh", "ab" * 32)


def test_declared_terms_must_be_the_attested_ones() -> None:
    link = ScriptedLink(FakeClock())
    link.attested = PeerInfo("peer", terms=_terms("follower", sealing="gramine"))
    declared = _terms("follower", sealing="file").encode()
    link.feed(envelope(hello("follower", terms=declared, seed=9)))

    with pytest.raises(ProtocolError) as info:
        leader_handshake(link, hello("leader"), timeout=10)

    assert info.value.code == "protocol.terms"  # checked before the hello's own fields
    assert "sealing: expected gramine, seen file" in info.value.message
    assert "seed" not in info.value.message
    assert link.sent()[0].abort.code == "protocol.terms"


def test_attested_terms_that_match_pass_and_are_declared_back() -> None:
    link = ScriptedLink(FakeClock())
    link.attested = PeerInfo("peer", terms=_terms("follower"))
    link.own_terms = _terms("leader").encode()
    link.feed(envelope(hello("follower", terms=_terms("follower").encode())))
    leader_handshake(link, hello("leader"), timeout=10)
    (sent,) = link.sent()
    assert sent.hello.terms == _terms("leader").encode()


def test_the_leaders_abort_reaches_the_follower_with_its_reason() -> None:
    link = ScriptedLink(FakeClock())
    abort = pb.Abort(
        code="protocol.hello", message="session hello mismatch: seed: expected 1, seen 7"
    )
    link.feed(pb.Envelope(abort=abort))
    with pytest.raises(PeerStoppedError) as info:
        follower_handshake(link, hello("follower"), timeout=10)
    assert info.value.code == "protocol.hello"
    assert "seed: expected 1, seen 7" in info.value.reason


def test_a_message_other_than_a_hello_is_refused() -> None:
    link = ScriptedLink(FakeClock())
    link.feed(pb.Envelope(forward=pb.Forward(step=1)))
    with pytest.raises(ProtocolError, match="expected hello, seen forward") as info:
        leader_handshake(link, hello("leader"), timeout=10)
    assert info.value.code == "protocol.unexpected"


def test_no_hello_in_time_is_a_timeout() -> None:
    clock = FakeClock()
    link = ScriptedLink(clock)
    started = clock.now
    with pytest.raises(PeerUnavailableError) as info:
        leader_handshake(link, hello("leader"), timeout=30)
    assert info.value.code == "peer.timeout"
    assert clock.now - started == 30
