"""A reliable session over reconnecting bridge streams.

Sequence numbers, acknowledgements, resending, duplicate dropping and heartbeats. The follower
redials after a cut (with jittered backoff), the leader accepts the new stream, and both resend
what the other has not acknowledged, so no message is lost or delivered twice. A peer that went
silent for ``heartbeat_timeout`` seconds is treated as a cut. A peer that comes back as a *new
process* (it lost its state) raises :class:`PeerRestarted`, and the trainer renegotiates from the
newest checkpoint both sides hold.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cvfl.bridge.link import Link, abort_envelope, abort_error
from cvfl.errors import PeerUnavailableError, ProtocolError
from cvfl.logs import get_logger
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)

Connect = Callable[[float], Link]
Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Liveness:
    """Timing of the session's liveness checks (seconds)."""

    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 5.0
    give_up_after: float = 120.0


class PeerRestarted(Exception):  # noqa: N818 - a signal to the trainer, not an error
    """The peer came back as a new process; ``hello`` is its opening message (None: send ours)."""

    def __init__(self, transport: Link, hello: pb.Envelope | None) -> None:
        super().__init__("the peer restarted")
        self.transport = transport
        self.hello = hello


class Session:
    """Send and receive application messages reliably across stream cuts."""

    def __init__(
        self,
        transport: Link,
        connect: Connect,
        session_id: bytes,
        *,
        dialer: bool,
        liveness: Liveness,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        """Start the session (and its heartbeat thread) on ``transport``.

        ``clock`` and ``sleep`` measure and wait out the liveness timings; the stream waits in
        ``transport.get``. Tests pass a fake clock and a scripted link to run without timers.
        """
        self.session_id = session_id
        self.liveness = liveness
        self.reconnects = 0
        self._connect = connect
        self._dialer = dialer
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._seq = 0
        self._unacked: deque[pb.Envelope] = deque()
        self._delivered = 0
        self._last_heard = clock()
        self._closed = threading.Event()
        self._beat = threading.Thread(target=self._heartbeats, daemon=True, name="cvfl-heartbeat")
        self._beat.start()

    @property
    def transport(self) -> Link:
        """The current stream."""
        return self._transport

    def send(self, envelope: pb.Envelope) -> None:
        """Number, remember and send an application message."""
        with self._lock:
            self._seq += 1
            envelope.seq = self._seq
            envelope.ack = self._delivered
            self._unacked.append(envelope)
            transport = self._transport
        with contextlib.suppress(PeerUnavailableError):  # resent after a reconnect
            transport.put(envelope)

    def recv(self, timeout: float) -> pb.Envelope:
        """The next application message; reconnects transparently while waiting."""
        deadline = self._clock() + timeout
        while True:
            try:
                envelope = self._transport.get(min(0.25, self.liveness.heartbeat_interval))
            except PeerUnavailableError as exc:
                self._reconnect(exc.message)
                continue
            now = self._clock()
            if envelope is None:
                silent = now - self._last_heard
                if silent > self.liveness.heartbeat_timeout:
                    self._reconnect(f"no heartbeat from the peer for {silent:.1f} s")
                elif now > deadline:
                    raise PeerUnavailableError(
                        f"the peer is alive but sent nothing for {timeout:.0f} s",
                        code="peer.timeout",
                    )
                continue
            delivered = self._accept(envelope, now)
            if delivered is not None:
                return delivered

    def _accept(self, envelope: pb.Envelope, now: float) -> pb.Envelope | None:
        self._last_heard = now
        self._acknowledged(envelope.ack)
        kind = envelope.WhichOneof("body")
        if kind in ("heartbeat", "resume"):
            return None
        if kind == "hello":
            raise PeerRestarted(self._transport, envelope)
        with self._lock:
            if envelope.seq and envelope.seq <= self._delivered:
                return None  # a duplicate resent after a reconnect
            if envelope.seq:
                self._delivered = envelope.seq
        if kind == "abort":
            raise abort_error(envelope.abort)
        return envelope

    def _acknowledged(self, ack: int) -> None:
        with self._lock:
            while self._unacked and self._unacked[0].seq <= ack:
                self._unacked.popleft()

    def _heartbeats(self) -> None:
        while not self._closed.wait(self.liveness.heartbeat_interval):
            self.beat()

    def beat(self) -> None:
        """Send one heartbeat, acknowledging what was delivered (the heartbeat thread's work)."""
        with self._lock:
            beat = pb.Envelope(heartbeat=pb.Heartbeat(), ack=self._delivered)
            transport = self._transport
        with contextlib.suppress(PeerUnavailableError):
            transport.put(beat)

    def _reconnect(self, reason: str) -> None:
        log.warning("bridge: %s; reconnecting (giving up after %.0f s)", reason, self._give_up())
        self._transport.close()
        started = self._clock()
        while True:
            remaining = self.liveness.give_up_after - (self._clock() - started)
            if remaining <= 0:
                raise PeerUnavailableError(
                    f"the peer has been unreachable for {self.liveness.give_up_after:.0f} s "
                    f"({reason}); restart it, then restart this party with the same job file: "
                    "both resume from the newest checkpoint they hold",
                    code="peer.gone",
                )
            try:
                transport = self._connect(remaining)
                if self._resume(transport, remaining):
                    break
            except PeerUnavailableError as exc:
                log.debug("reconnect attempt failed: %s", exc.message)
                self._sleep(0.2)
        self.reconnects += 1
        log.warning(
            "bridge: reconnected after %.1f s (reconnect %s); resent %s messages",
            self._clock() - started,
            self.reconnects,
            len(self._unacked),
        )

    def _give_up(self) -> float:
        return self.liveness.give_up_after

    def _resume(self, transport: Link, remaining: float) -> bool:
        """Exchange Resume messages on a new stream; resend what the peer lacks."""
        wait = min(remaining, self.liveness.heartbeat_timeout * 2)
        if self._dialer:
            transport.put(pb.Envelope(resume=self._resume_message()))
        first = _first_message(transport, wait, self._clock)
        if first is None:
            transport.close()
            return False
        kind = first.WhichOneof("body")
        if kind == "hello":
            raise PeerRestarted(transport, first)
        if kind == "abort":  # the peer came back only to say why it stops
            raise abort_error(first.abort)
        if kind != "resume":
            transport.close()
            return False
        if first.resume.session_id != self.session_id:
            if self._dialer:
                raise PeerRestarted(transport, None)
            transport.put(pb.Envelope(resume=pb.Resume()))  # unknown: start over with a hello
            return False
        if not self._dialer:
            transport.put(pb.Envelope(resume=self._resume_message()))
        with self._lock:
            self._transport = transport
            self._last_heard = self._clock()
            while self._unacked and self._unacked[0].seq <= first.resume.received:
                self._unacked.popleft()
            for envelope in self._unacked:
                envelope.ack = self._delivered
                transport.put(envelope)
        return True

    def _resume_message(self) -> pb.Resume:
        with self._lock:
            return pb.Resume(session_id=self.session_id, received=self._delivered)

    def close(self, drain: float = 5.0) -> None:
        """Wait up to ``drain`` seconds for the peer to acknowledge everything, then stop."""
        deadline = self._clock() + drain
        while self._unacked and self._clock() < deadline:
            try:
                envelope = self._transport.get(0.1)
            except PeerUnavailableError:
                break
            if envelope is not None:
                self._acknowledged(envelope.ack)
        self._closed.set()
        self._transport.close()

    def abort(self, error: ProtocolError | PeerUnavailableError | Exception) -> None:
        """Tell the peer why this side stops (best effort), then stop."""
        self._closed.set()
        _abort(self._transport, error)


def _abort(transport: Link, error: Exception) -> None:
    """Tell the peer why this side stops (best effort), then close the stream."""
    with contextlib.suppress(PeerUnavailableError):
        transport.put(abort_envelope(error))
    transport.close()


def _first_message(
    transport: Link, timeout: float, clock: Clock = time.monotonic
) -> pb.Envelope | None:
    """The first non-heartbeat message on a new stream, or None."""
    deadline = clock() + timeout
    while clock() < deadline:
        try:
            envelope = transport.get(min(0.25, max(0.01, deadline - clock())))
        except PeerUnavailableError:
            return None
        if envelope is not None and envelope.WhichOneof("body") != "heartbeat":
            return envelope
    return None


class DirectSession:
    """The bare stream, without acknowledgements, resending or heartbeats.

    For networks where a cut may end the job (``[peer] reliable = false``), and as the baseline
    that measures what the reliable session costs. It tolerates a reliable peer's heartbeats.
    """

    reconnects = 0

    def __init__(self, transport: Link) -> None:
        self.transport = transport

    def send(self, envelope: pb.Envelope) -> None:
        """Send as is."""
        self.transport.send(envelope)

    def recv(self, timeout: float) -> pb.Envelope:
        """The next application message."""
        while True:
            envelope = self.transport.recv(timeout)
            if envelope.WhichOneof("body") not in ("heartbeat", "resume"):
                return envelope

    def close(self, drain: float = 0.0) -> None:
        """Close the stream."""
        self.transport.close()

    def abort(self, error: ProtocolError | PeerUnavailableError | Exception) -> None:
        """Tell the peer why this side stops, then close."""
        _abort(self.transport, error)


AnySession = Session | DirectSession


def open_session(
    transport: Link,
    connect: Connect,
    session_id: bytes,
    *,
    dialer: bool,
    liveness: Liveness,
    reliable: bool,
) -> AnySession:
    """A reliable session, or the bare stream when ``reliable`` is false."""
    if not reliable:
        return DirectSession(transport)
    return Session(transport, connect, session_id, dialer=dialer, liveness=liveness)
