"""The reliable session on a scripted link and a fake clock: every timing is deterministic."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from cvfl.bridge.link import Link
from cvfl.bridge.reliable import Liveness, PeerRestarted, Session
from cvfl.errors import PeerStoppedError, PeerUnavailableError
from cvfl.wire import bridge_pb2 as pb
from tests.bridge.scripted import FakeClock, ScriptedLink, app, heartbeat, resume

SID = b"session-0123456789"
# The heartbeat thread waits in real time: at an hour it never fires during a test, which sends
# heartbeats with Session.beat() instead. Receiving still polls every 0.25 s (of fake time).
LIVENESS = Liveness(heartbeat_interval=3600.0, heartbeat_timeout=5.0, give_up_after=30.0)

Opener = Callable[..., Session]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_session(clock: FakeClock) -> Iterator[Opener]:
    """Open sessions on the fake clock; stop their heartbeat threads afterwards."""
    opened: list[Session] = []

    def _open(
        link: Link, connect: Callable[[float], Link] | None = None, *, dialer: bool = True
    ) -> Session:
        def no_peer(remaining: float) -> Link:
            raise AssertionError("this test does not reconnect")

        session = Session(
            link,
            connect or no_peer,
            SID,
            dialer=dialer,
            liveness=LIVENESS,
            clock=clock,
            sleep=clock.sleep,
        )
        opened.append(session)
        return session

    yield _open
    for session in opened:
        session.abort(RuntimeError("test over"))


def forward(step: int) -> pb.Envelope:
    return pb.Envelope(forward=pb.Forward(step=step))


def kinds(envelopes: list[pb.Envelope]) -> list[str | None]:
    return [e.WhichOneof("body") for e in envelopes]


def test_messages_are_numbered_and_acknowledge_what_was_delivered(
    clock: FakeClock, open_session: Opener
) -> None:
    link = ScriptedLink(clock)
    session = open_session(link)
    session.send(forward(1))
    session.send(forward(2))
    link.feed(app(1), app(2))
    assert session.recv(10).seq == 1
    assert session.recv(10).seq == 2
    session.send(forward(3))
    sent = link.sent()
    assert [(e.seq, e.ack) for e in sent] == [(1, 0), (2, 0), (3, 2)]


def test_messages_lost_in_a_cut_are_resent_on_the_new_stream(
    clock: FakeClock, open_session: Opener
) -> None:
    old, new = ScriptedLink(clock), ScriptedLink(clock)
    dials: list[float] = []

    def connect(remaining: float) -> Link:
        dials.append(remaining)
        return new

    session = open_session(old, connect)
    for step in (1, 2, 3):
        session.send(forward(step))
    assert [e.seq for e in old.sent()] == [1, 2, 3]
    old.cut()  # the peer received only message 1: 2 and 3 were lost with the stream
    new.feed(resume(SID, received=1), app(1, ack=1))

    got = session.recv(10)

    assert (got.seq, got.forward.step) == (1, 1)
    sent = new.sent()
    assert kinds(sent) == ["resume", "forward", "forward"]
    assert (sent[0].resume.session_id, sent[0].resume.received) == (SID, 0)
    assert [(e.seq, e.forward.step) for e in sent[1:]] == [(2, 2), (3, 3)]
    assert old.closed
    assert session.reconnects == 1
    assert dials == [LIVENESS.give_up_after]


def test_the_listener_answers_the_dialers_resume_then_resends(
    clock: FakeClock, open_session: Opener
) -> None:
    old, new = ScriptedLink(clock), ScriptedLink(clock)
    session = open_session(old, lambda remaining: new, dialer=False)
    for step in (1, 2, 3):
        session.send(forward(step))
    old.feed(app(1), heartbeat(ack=1))
    assert session.recv(10).seq == 1
    old.cut()
    new.feed(resume(SID, received=2), app(2))

    assert session.recv(10).seq == 2
    sent = new.sent()
    assert kinds(sent) == ["resume", "forward"]
    assert sent[0].resume.received == 1
    assert (sent[1].seq, sent[1].ack) == (3, 1)


def test_a_heartbeats_ack_releases_messages_so_they_are_not_resent(
    clock: FakeClock, open_session: Opener
) -> None:
    old, new = ScriptedLink(clock), ScriptedLink(clock)
    session = open_session(old, lambda remaining: new)
    for step in (1, 2, 3):
        session.send(forward(step))
    old.feed(heartbeat(ack=2))
    old.cut()
    new.feed(resume(SID, received=0), app(1))  # the peer says less than it acknowledged

    session.recv(10)

    assert [e.seq for e in new.sent() if e.HasField("forward")] == [3]


def test_a_duplicate_is_delivered_once(clock: FakeClock, open_session: Opener) -> None:
    link = ScriptedLink(clock)
    session = open_session(link)
    link.feed(app(1), app(1), app(2), app(1), app(2), app(3))
    assert [session.recv(10).seq for _ in range(3)] == [1, 2, 3]
    assert not link.inbox


def test_after_a_reconnect_resent_and_reordered_messages_keep_the_order(
    clock: FakeClock, open_session: Opener
) -> None:
    old, new = ScriptedLink(clock), ScriptedLink(clock)
    session = open_session(old, lambda remaining: new)
    old.feed(app(1, step=1), app(2, step=2))
    assert [session.recv(10).seq for _ in range(2)] == [1, 2]
    old.cut()
    # The peer never saw our ack of 2: it resends 2 and 3, and an older copy of 2 comes late.
    new.feed(resume(SID, received=0), app(2, step=2), app(3, step=3), app(2, step=2), app(4))

    delivered = [session.recv(10) for _ in range(2)]

    assert [(e.seq, e.forward.step) for e in delivered] == [(3, 3), (4, 1)]
    assert new.sent()[0].resume.received == 2  # told the peer where to resume
    assert not new.inbox


def test_beat_sends_a_heartbeat_acknowledging_what_was_delivered(
    clock: FakeClock, open_session: Opener
) -> None:
    link = ScriptedLink(clock)
    session = open_session(link)
    link.feed(app(1), app(2))
    session.recv(10)
    session.recv(10)
    session.beat()
    (sent,) = link.sent()
    assert (sent.WhichOneof("body"), sent.ack, sent.seq) == ("heartbeat", 2, 0)


def test_silence_past_the_heartbeat_timeout_is_a_cut_and_the_peer_is_given_up(
    clock: FakeClock, open_session: Opener
) -> None:
    link = ScriptedLink(clock)
    dials: list[float] = []

    def refused(remaining: float) -> Link:
        dials.append(clock.now)
        clock.sleep(1.0)
        raise PeerUnavailableError("connection refused", code="peer.unreachable")

    session = open_session(link, refused)
    started = clock.now

    with pytest.raises(PeerUnavailableError) as info:
        session.recv(600)

    error = info.value
    assert error.code == "peer.gone"
    assert re.search(r"no heartbeat from the peer for 5\.\d s", error.message)
    assert "unreachable for 30 s" in error.message
    assert "restart" in error.message
    # The cut is declared after 5 s of silence (polls of 0.25 s), then 30 s of attempts.
    assert dials[0] - started == pytest.approx(5.25)
    assert clock.now - dials[0] == pytest.approx(30.0, abs=1.2)
    assert len(dials) == 25  # 1 s per refused dial + 0.2 s pause
    assert link.closed
    assert session.reconnects == 0


def test_a_live_but_silent_peer_times_out_without_reconnecting(
    clock: FakeClock, open_session: Opener
) -> None:
    link = ScriptedLink(clock)
    next_beat = [clock.now + 1.0]

    def peer_beats() -> None:  # the peer's heartbeat thread: one a second
        if clock.now >= next_beat[0]:
            link.feed(heartbeat())
            next_beat[0] += 1.0

    link.on_idle = peer_beats
    session = open_session(link)
    started = clock.now

    with pytest.raises(PeerUnavailableError) as info:
        session.recv(20)

    assert info.value.code == "peer.timeout"
    assert "alive but sent nothing for 20 s" in info.value.message
    assert clock.now - started == pytest.approx(20.25)
    assert session.reconnects == 0


def test_give_up_after_counts_from_the_cut_even_when_dials_hang(
    clock: FakeClock, open_session: Opener
) -> None:
    link = ScriptedLink(clock)
    budgets: list[float] = []

    def hangs(remaining: float) -> Link:
        budgets.append(remaining)
        clock.sleep(remaining)  # waited its whole budget, then failed
        raise PeerUnavailableError("timed out", code="peer.unreachable")

    session = open_session(link, hangs)
    link.cut()
    with pytest.raises(PeerUnavailableError) as info:
        session.recv(600)
    assert info.value.code == "peer.gone"
    assert "the peer closed the stream: connection reset" in info.value.message
    assert budgets == [30.0]


def test_a_peer_that_comes_back_with_a_hello_restarted(
    clock: FakeClock, open_session: Opener
) -> None:
    old, new = ScriptedLink(clock), ScriptedLink(clock)
    session = open_session(old, lambda remaining: new)
    old.cut()
    new.feed(heartbeat(), pb.Envelope(hello=pb.Hello(job_id="job")))
    with pytest.raises(PeerRestarted) as info:
        session.recv(10)
    assert info.value.transport is new
    assert info.value.hello is not None
    assert info.value.hello.hello.job_id == "job"


def test_a_dialer_resumed_by_another_session_id_learns_the_peer_restarted(
    clock: FakeClock, open_session: Opener
) -> None:
    old, new = ScriptedLink(clock), ScriptedLink(clock)
    session = open_session(old, lambda remaining: new)
    old.cut()
    new.feed(resume(b"another-session", received=0))
    with pytest.raises(PeerRestarted) as info:
        session.recv(10)
    assert info.value.hello is None  # this side sends the hello


def test_a_listener_tells_an_unknown_session_to_start_over_and_waits_for_the_next(
    clock: FakeClock, open_session: Opener
) -> None:
    old, stranger, again = ScriptedLink(clock), ScriptedLink(clock), ScriptedLink(clock)
    streams = iter([stranger, again])
    session = open_session(old, lambda remaining: next(streams), dialer=False)
    old.cut()
    stranger.feed(resume(b"another-session", received=5))
    again.feed(resume(SID, received=0), app(1))

    assert session.recv(10).seq == 1
    (answer,) = stranger.sent()
    assert answer.resume == pb.Resume()  # unknown: send a hello
    assert session.reconnects == 1


def test_the_peers_abort_ends_the_session_with_its_code(
    clock: FakeClock, open_session: Opener
) -> None:
    link = ScriptedLink(clock)
    session = open_session(link)
    link.feed(
        pb.Envelope(
            seq=1, abort=pb.Abort(code="protocol.hello", message="seed: expected 1, seen 2")
        )
    )
    with pytest.raises(PeerStoppedError) as info:
        session.recv(10)
    assert info.value.code == "protocol.hello"
    assert info.value.reason == "seed: expected 1, seen 2"


def test_close_waits_for_acknowledgements_at_most_the_drain(
    clock: FakeClock, open_session: Opener
) -> None:
    acked, silent = ScriptedLink(clock), ScriptedLink(clock)
    first, second = open_session(acked), open_session(silent)
    first.send(forward(1))
    second.send(forward(1))
    acked.feed(heartbeat(ack=1))

    started = clock.now
    first.close(drain=5.0)
    assert clock.now == started  # acknowledged at once
    second.close(drain=5.0)
    assert clock.now - started == pytest.approx(5.0, abs=0.11)
    assert acked.closed
    assert silent.closed
