"""gRPC transport for the PSI exchange: the leader serves one stream, the follower connects.

The servicer only authorises the caller and hands the stream to a :class:`Session`; all protocol
logic lives in :mod:`cvfl.psi.ecdh.exchange` (ECDH-PSI) or :mod:`cvfl.psi.fast.session` (fast).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from cvfl.bridge.security import SERVER_OPTIONS, ChannelSecurity, Connection
from cvfl.errors import AttestationError, PeerUnavailableError
from cvfl.logs import get_logger
from cvfl.psi.config import AlignJob, PsiConfig
from cvfl.psi.stream import FrameStream
from cvfl.wire import psi_pb2, psi_pb2_grpc

log = get_logger(__name__)

__all__ = ["PsiServicer", "StreamSession", "connect_session", "run_session", "serve_session"]


# One party's side of an exchange (ECDH or fast mode) as the transport drives it: both modes'
# sessions are FrameStreams (start, outgoing, wait).
StreamSession = FrameStream


class PsiServicer(psi_pb2_grpc.PsiServicer):
    """Accepts exactly one authorised exchange stream and runs it on ``session``."""

    def __init__(self, session: StreamSession, security: ChannelSecurity) -> None:
        self._session = session
        self._security = security
        self._claimed = threading.Lock()
        self.connected = threading.Event()

    def Exchange(  # noqa: N802 - the name is fixed by the proto
        self, request_iterator: Iterator[psi_pb2.PsiFrame], context: grpc.ServicerContext
    ) -> Iterator[psi_pb2.PsiFrame]:
        """Run the leader's side of the exchange on this stream."""
        try:
            peer = self._security.authorize(context)
        except AttestationError as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.message)
        if not self._claimed.acquire(blocking=False):
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "an alignment is already running")
        log.info("psi: follower connected (%s)", peer.description)
        self._session.start(
            request_iterator,
            context.cancel,
            channel_peer=peer.certificate,
            own_terms=self._security.terms,
            attested=peer.terms,
        )
        self.connected.set()
        yield from self._session.outgoing()


def serve_session(
    session: StreamSession,
    security: ChannelSecurity,
    address: str,
    *,
    connect_timeout: float,
    timeout: float,
    on_bound: Callable[[int], None] | None = None,
) -> None:
    """Serve ``session`` on ``address`` until it completes (leader side).

    Raises:
        PeerUnavailableError: no follower connected within ``connect_timeout`` seconds.
        AlignmentError: the exchange failed.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=SERVER_OPTIONS)
    servicer = PsiServicer(session, security)
    psi_pb2_grpc.add_PsiServicer_to_server(servicer, server)
    binding = security.bind(server, address)
    server.start()
    log.info("psi: leader listening on %s (port %d, %s)", address, binding.port, security.name)
    try:
        if on_bound is not None:
            on_bound(binding.port)
        if not servicer.connected.wait(connect_timeout):
            raise PeerUnavailableError(
                f"no follower connected to {address} within {connect_timeout:g} s",
                code="psi.no_peer",
            )
        session.wait(timeout)
    finally:
        server.stop(grace=2.0).wait()
        binding.close()


def connect_session(
    session: StreamSession,
    security: ChannelSecurity,
    target: str,
    *,
    connect_timeout: float,
    timeout: float,
) -> None:
    """Run ``session`` as the client of the leader at ``target`` (follower side).

    Raises:
        PeerUnavailableError: the leader could not be reached within ``connect_timeout`` seconds.
        AlignmentError: the exchange failed.
    """
    deadline = time.monotonic() + connect_timeout
    connection = _connect_retrying(security, target, deadline)
    channel = connection.channel
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=max(0.1, deadline - time.monotonic()))
        except grpc.FutureTimeoutError:
            raise PeerUnavailableError(
                f"the leader at {target} was not reachable within {connect_timeout:g} s",
                code="psi.no_peer",
            ) from None
        stub = psi_pb2_grpc.PsiStub(channel)
        call = stub.Exchange(session.outgoing(), timeout=timeout)
        session.start(
            call,
            call.cancel,
            channel_peer=connection.peer.certificate,
            own_terms=security.terms,
            attested=connection.peer.terms,
        )
        session.wait(timeout)
    finally:
        channel.close()


def _connect_retrying(security: ChannelSecurity, target: str, deadline: float) -> Connection:
    """Open the channel, retrying while the leader is not up yet (it listens after blinding)."""
    while True:
        try:
            return security.connect(target, max(0.1, deadline - time.monotonic()))
        except PeerUnavailableError:
            if time.monotonic() + 0.5 >= deadline:
                raise
            log.debug("psi: leader at %s not up yet; retrying", target)
            time.sleep(0.5)


def run_session(
    job: AlignJob,
    cfg: PsiConfig,
    security: ChannelSecurity,
    session: StreamSession,
    on_bound: Callable[[int], None] | None,
) -> None:
    """Serve (leader) or connect (follower) and run ``session`` to completion."""
    if job.role == "leader":
        serve_session(
            session,
            security,
            job.address,
            connect_timeout=cfg.connect_timeout_s,
            timeout=cfg.timeout_s,
            on_bound=on_bound,
        )
    else:
        connect_session(
            session,
            security,
            job.address,
            connect_timeout=cfg.connect_timeout_s,
            timeout=cfg.timeout_s,
        )
