"""A message pipe to the peer over one bidirectional gRPC stream, for both ends.

The leader runs a :class:`BridgeServer` and accepts a :class:`Link`; the follower dials one.
Training code only sees ``send``/``recv``; the gRPC servicer only translates and delegates.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError

from cvfl.bridge.security import SERVER_OPTIONS, ChannelSecurity, PeerInfo
from cvfl.errors import (
    MAX_PEER_REASON,
    AttestationError,
    CvflError,
    PeerStoppedError,
    PeerUnavailableError,
    ProtocolError,
    printable,
    reason_for_peer,
)
from cvfl.fsutil import atomic_write_bytes
from cvfl.logs import get_logger
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)


@dataclass(frozen=True)
class _Closed:
    reason: str


@dataclass(frozen=True)
class _Malformed:
    """The peer sent bytes that are not an Envelope: the session ends with this error."""

    error: ProtocolError


SESSION_METHOD = "/cvfl.v1.Bridge/Session"


_END = object()


class Link:
    """One end of a bridge stream: ordered, numbered messages to and from the peer.

    ``peer`` describes the other end for messages; ``attested`` is what the channel security
    established about it (the hello checks its job terms against the attested ones).
    """

    def __init__(self, peer: str, attested: PeerInfo | None = None, own_terms: bytes = b"") -> None:
        self.peer = peer
        self.attested = attested or PeerInfo(peer)
        self.own_terms = own_terms  # what this side's hellos declare (its attested terms)
        self._out: queue.Queue[object] = queue.Queue()
        self._in: queue.Queue[pb.Envelope | _Closed | _Malformed] = queue.Queue()
        self._seq = 0
        self._last_seen = 0
        self.closed = False
        self.bytes_sent = 0  # serialized envelope bytes (gRPC framing and TLS not counted)
        self.bytes_received = 0

    def send(self, envelope: pb.Envelope) -> None:
        """Queue a message for the peer (numbered and acknowledging what was received)."""
        if self.closed:
            raise PeerUnavailableError("the bridge stream is closed", code="peer.closed")
        self._seq += 1
        envelope.seq = self._seq
        envelope.ack = self._last_seen
        self.bytes_sent += envelope.ByteSize()
        self._out.put(envelope)

    def recv(self, timeout: float) -> pb.Envelope:
        """Wait for the next message; the peer's Abort becomes a ProtocolError here."""
        item = self._take(timeout)
        if item is None:
            raise PeerUnavailableError(
                f"no message from the peer ({self.peer}) within {timeout:.0f} s",
                code="peer.timeout",
            )
        self._last_seen = item.seq
        self.bytes_received += item.ByteSize()
        if item.WhichOneof("body") == "abort":
            raise abort_error(item.abort)
        return item

    def put(self, envelope: pb.Envelope) -> None:
        """Queue a message exactly as given (the reliable session numbers its own)."""
        if self.closed:
            raise PeerUnavailableError("the bridge stream is closed", code="peer.closed")
        self.bytes_sent += envelope.ByteSize()
        self._out.put(envelope)

    def get(self, timeout: float) -> pb.Envelope | None:
        """The next raw message, or None after ``timeout``; raise if the stream has ended."""
        item = self._take(timeout)
        if item is not None:
            self.bytes_received += item.ByteSize()
        return item

    def _take(self, timeout: float) -> pb.Envelope | None:
        """The next message, None after ``timeout``; raise once the stream ended or broke.

        Raises:
            PeerUnavailableError: the stream has ended (``peer.closed``).
            ProtocolError: the peer sent something that is not an Envelope
                (``protocol.decode``).
        """
        try:
            item = self._in.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Closed | _Malformed):
            self._in.put(item)  # every later read fails the same way
            if isinstance(item, _Malformed):
                raise item.error
            raise PeerUnavailableError(
                f"the peer ({self.peer}) closed the stream: {item.reason}", code="peer.closed"
            )
        return item

    def abort(self, error: CvflError) -> None:
        """Tell the peer why this side stops, then close."""
        if not self.closed:
            self.send(abort_envelope(error))
        self.close()

    def wait_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the peer to end the stream; True if it did.

        Whatever arrives meanwhile is dropped: call this after this side's last message, so
        that stopping the server does not cut that message off before the peer has read it.
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                self._take(min(left, 0.1))
            except CvflError:
                return True
        return False

    def close(self) -> None:
        """Finish the outgoing half of the stream (idempotent)."""
        if not self.closed:
            self.closed = True
            self._out.put(_END)

    def _outgoing(self) -> Iterator[pb.Envelope]:
        while True:
            item = self._out.get()
            if item is _END:
                return
            assert isinstance(item, pb.Envelope)
            yield item

    def _pump(self, incoming: Iterator[bytes]) -> None:
        """Parse the peer's messages (raw bytes off the stream) into the receiving queue."""
        try:
            for raw in incoming:
                try:
                    envelope = pb.Envelope.FromString(raw)
                except DecodeError:
                    error = ProtocolError(
                        f"a message of {len(raw)} bytes from the peer ({self.peer}) is not a "
                        "cvfl.v1.Envelope",
                        code="protocol.decode",
                    )
                    self._in.put(_Malformed(error))
                    return
                self._in.put(envelope)
            self._in.put(_Closed("end of stream"))
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            self._in.put(_Closed(f"{code}: {details}"))
        except Exception as exc:  # the stream is gone either way
            self._in.put(_Closed(repr(exc)))


class _Servicer:
    """Translates the gRPC stream into a Link and hands it to the waiting trainer.

    The stream's requests arrive as raw bytes (no deserializer): the link parses them, so a
    malformed message becomes a ``protocol.decode`` error this side reports to the peer.
    """

    def __init__(self, security: ChannelSecurity, accepted: queue.Queue[Link]) -> None:
        self._security = security
        self._accepted = accepted

    def handler(self) -> grpc.GenericRpcHandler[bytes, pb.Envelope]:
        """The ``cvfl.v1.Bridge`` service with raw-bytes requests."""
        method = grpc.stream_stream_rpc_method_handler(
            self.session, response_serializer=pb.Envelope.SerializeToString
        )
        return grpc.method_handlers_generic_handler("cvfl.v1.Bridge", {"Session": method})

    def session(
        self, request_iterator: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[pb.Envelope]:
        """Serve one bridge stream."""
        try:
            peer = self._security.authorize(context)
        except AttestationError as exc:
            log.error("refused a bridge stream: %s", exc.message)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        link = Link(peer.description, peer, _own_terms(self._security))
        context.add_callback(link.close)
        threading.Thread(target=link._pump, args=(request_iterator,), daemon=True).start()
        self._accepted.put(link)
        yield from link._outgoing()


class BridgeServer:
    """The leader's listening end: binds through a ChannelSecurity and accepts streams."""

    def __init__(
        self, security: ChannelSecurity, address: str, port_file: Path | None = None
    ) -> None:
        self._accepted: queue.Queue[Link] = queue.Queue()
        self._port_file = port_file
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="cvfl-bridge"),
            options=SERVER_OPTIONS,
        )
        self._server.add_generic_rpc_handlers((_Servicer(security, self._accepted).handler(),))
        self._binding = security.bind(self._server, address)
        self.port = self._binding.port
        self._server.start()
        log.info("bridge listening on port %s (%s)", self.port, security.name)
        if port_file is not None:  # a leader on port 0 tells a follower on this machine
            atomic_write_bytes(port_file, f"{self.port}\n".encode(), mode=0o644)

    def accept(self, timeout: float) -> Link:
        """Wait for the follower's stream."""
        try:
            return self._accepted.get(timeout=timeout)
        except queue.Empty:
            raise PeerUnavailableError(
                f"no follower connected within {timeout:.0f} s", code="peer.timeout"
            ) from None

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving (and withdraw the port file)."""
        self._server.stop(grace).wait()
        self._binding.close()
        if self._port_file is not None:
            self._port_file.unlink(missing_ok=True)


class ClientLink(Link):
    """The follower's end; owns its channel."""

    def __init__(
        self,
        channel: grpc.Channel,
        target: str,
        attested: PeerInfo | None = None,
        own_terms: bytes = b"",
    ) -> None:
        super().__init__(target, attested, own_terms)
        self._channel = channel
        session = channel.stream_stream(
            SESSION_METHOD,
            request_serializer=pb.Envelope.SerializeToString,
            response_deserializer=None,  # raw bytes: the link parses them
        )
        responses = session(self._outgoing())
        threading.Thread(target=self._pump, args=(responses,), daemon=True).start()

    def close(self) -> None:
        """Close the stream, then the channel once the stream has drained."""
        super().close()

    def shutdown(self) -> None:
        """Close the channel."""
        self.close()
        self._channel.close()


def dial(security: ChannelSecurity, address: str | Callable[[], str], timeout: float) -> ClientLink:
    """Connect to the leader, retrying with jittered backoff until ``timeout`` seconds pass.

    ``address`` may be a function, asked again before every attempt (a restarted leader may
    listen on a new port).
    """
    deadline = time.monotonic() + timeout
    delay = 0.1
    last, target = "not tried", address if isinstance(address, str) else "the leader"
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            target = address if isinstance(address, str) else address()
            connection = security.connect(target, timeout=min(remaining, 10.0))
            channel = connection.channel
            try:
                grpc.channel_ready_future(channel).result(timeout=min(remaining, 2.0))
            except grpc.FutureTimeoutError:
                channel.close()
                raise PeerUnavailableError("not ready", code="peer.unreachable") from None
            log.info("connected to the leader at %s (%s)", target, security.name)
            return ClientLink(channel, target, connection.peer, _own_terms(security))
        except PeerUnavailableError as exc:
            last = exc.message
        log.debug("leader at %s not reachable yet (%s); retrying", target, last)
        time.sleep(min(delay * (0.5 + random.random()), max(0.0, remaining)))
        delay = min(delay * 2, 2.0)
    raise PeerUnavailableError(
        f"could not reach the leader at {target} within {timeout:.0f} s ({last})",
        code="peer.unreachable",
    )


def abort_envelope(error: BaseException) -> pb.Envelope:
    """The Abort telling the peer why this side stops (never a local path, row or id).

    A :class:`ProtocolError` refuses something the peer sent and is told in full; any other
    error only by its kind (see :func:`cvfl.errors.reason_for_peer`).
    """
    code = error.code if isinstance(error, CvflError) else "cvfl.error"
    reason = reason_for_peer(error, visible=isinstance(error, ProtocolError))
    return pb.Envelope(abort=pb.Abort(code=code, message=reason))


def abort_error(abort: pb.Abort) -> PeerStoppedError:
    """The local error for the peer's Abort (its code kept, its text shortened and printable)."""
    code = printable(abort.code, 64) or "protocol.peer_abort"
    reason = printable(abort.message, MAX_PEER_REASON)
    return PeerStoppedError(
        f"the peer stopped the session: [{code}] {reason}", code=code, reason=reason
    )


def _own_terms(security: ChannelSecurity) -> bytes:
    return security.terms.encode() if security.terms is not None else b""


def expect(envelope: pb.Envelope, kind: str) -> None:
    """Raise a ProtocolError unless ``envelope`` carries a ``kind`` message."""
    seen = envelope.WhichOneof("body")
    if seen != kind:
        raise ProtocolError(
            f"unexpected message from the peer: expected {kind}, seen {seen}",
            code="protocol.unexpected",
        )
