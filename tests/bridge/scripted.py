"""A fake clock and a scripted link: the reliable session and the hello without timers.

``ScriptedLink`` is a real :class:`cvfl.bridge.link.Link` (its numbering, acks and abort
handling are the production code) whose stream is replaced by a script: the test puts the
peer's messages in ``inbox`` and reads what this side sent with ``sent()``. Waiting for a
message that is not there advances the fake clock by the whole wait instead of sleeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from cvfl.bridge.link import Link
from cvfl.errors import PeerUnavailableError
from cvfl.wire import bridge_pb2 as pb


class FakeClock:
    """A monotonic clock that only moves when told to (or when something waits on it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedLink(Link):
    """One end of a stream whose peer is the test: no gRPC, no threads, no real waits."""

    def __init__(self, clock: FakeClock, peer: str = "scripted-peer") -> None:
        super().__init__(peer)
        self.clock = clock
        self.inbox: deque[pb.Envelope] = deque()
        self.cut_reason: str | None = None
        self.on_idle: Callable[[], None] = lambda: None
        self.polls = 0

    def feed(self, *envelopes: pb.Envelope) -> None:
        """Messages the peer sends on this stream, in order."""
        self.inbox.extend(envelopes)

    def cut(self, reason: str = "connection reset") -> None:
        """The stream breaks: what is already in the inbox is read, then every read fails."""
        self.cut_reason = reason

    def sent(self) -> list[pb.Envelope]:
        """Everything this side has put on the stream since the last call (in order)."""
        out: list[pb.Envelope] = []
        while not self._out.empty():
            item = self._out.get_nowait()
            if isinstance(item, pb.Envelope):
                out.append(item)
        return out

    def _take(self, timeout: float) -> pb.Envelope | None:
        self.polls += 1
        if not self.inbox and self.cut_reason is None:
            self.clock.sleep(timeout)
            self.on_idle()
        if self.inbox:
            return self.inbox.popleft()
        if self.cut_reason is not None:
            raise PeerUnavailableError(
                f"the peer closed the stream: {self.cut_reason}", code="peer.closed"
            )
        return None


def app(seq: int, ack: int = 0, step: int = 1) -> pb.Envelope:
    """An application message as the peer's session numbers it."""
    return pb.Envelope(seq=seq, ack=ack, forward=pb.Forward(step=step))


def resume(session_id: bytes, received: int) -> pb.Envelope:
    """The peer's Resume on a new stream."""
    return pb.Envelope(resume=pb.Resume(session_id=session_id, received=received))


def heartbeat(ack: int = 0) -> pb.Envelope:
    """The peer's heartbeat."""
    return pb.Envelope(heartbeat=pb.Heartbeat(), ack=ack)
