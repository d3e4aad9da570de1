"""Plumbing shared by both PSI exchanges (ECDH and fast mode) over one bidirectional stream.

Outgoing frames go through a queue the transport drains (:meth:`FrameStream.outgoing`); a thread
consumes the peer's frames; the first failure is recorded, sent to the peer as an abort, and
raised by :meth:`FrameStream.wait`. Subclasses handle the frames and say when they are complete.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future

import grpc

from cvfl.attestation.terms import JobTerms, declared_terms_problems, declared_terms_refusal
from cvfl.errors import AlignmentError, CvflError, mismatch
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.wire import psi_pb2

log = get_logger(__name__)

Outgoing = psi_pb2.PsiFrame | Future[psi_pb2.PsiFrame] | None


class FrameStream:
    """One party's side of a PSI stream: sending queue, receiving thread, failure, waiting."""

    def __init__(self, *, me: serde.PsiHello, peer_role: str) -> None:
        self.me = me
        self.peer: serde.PsiHello | None = None
        self._peer_role = peer_role
        self._lock = threading.Lock()
        self._out: queue.Queue[Outgoing] = queue.Queue()
        self._failure: CvflError | None = None
        self._finished = threading.Event()
        self._sent_all = threading.Event()
        self._cancel: Callable[[], None] | None = None
        self.channel_peer: bytes | None = None
        self._attested: JobTerms | None = None

    # ----- driving -----------------------------------------------------------------------
    def start(
        self,
        inbound: Iterable[psi_pb2.PsiFrame],
        cancel: Callable[[], None],
        *,
        channel_peer: bytes | None = None,
        own_terms: JobTerms | None = None,
        attested: JobTerms | None = None,
    ) -> None:
        """Queue the hello and start the receiving thread (and the subclass's own threads).

        ``channel_peer`` is the peer's TLS certificate (DER) when the transport knows it;
        ``own_terms`` go into our hello, and the peer's hello must declare ``attested``.
        """
        self._cancel = cancel
        self.channel_peer = channel_peer
        self._attested = attested
        if own_terms is not None:
            self.me = dataclasses.replace(self.me, terms=own_terms.encode())
        self._out.put(serde.hello_to_proto(self.me))
        threading.Thread(target=self._receive, args=(inbound,), daemon=True).start()
        self._started()

    def _started(self) -> None:
        """Hook: start further threads once the stream is up."""

    def outgoing(self) -> Iterator[psi_pb2.PsiFrame]:
        """Yield the frames to send, in order; ends after the last frame or an abort."""
        try:
            while True:
                item = self._out.get()
                if self._failure is not None:
                    yield serde.abort_to_proto(self._failure)
                    return
                if item is None:
                    return
                frame = self._resolve(item) if isinstance(item, Future) else item
                if frame is not None:
                    yield frame
                    self._sent(frame)
        finally:
            self._sent_all.set()

    def _resolve(self, item: Future[psi_pb2.PsiFrame]) -> psi_pb2.PsiFrame | None:
        try:
            return item.result()
        except CvflError as exc:
            self.fail(exc)
        except Exception as exc:  # a bug or resource failure must still stop both sides
            self.fail(internal("answering a peer batch", exc))
        return None

    def _sent(self, frame: psi_pb2.PsiFrame) -> None:
        """Hook: a frame went out."""

    def wait(self, timeout: float) -> None:
        """Block until the exchange completed; raise the first failure.

        Raises:
            AlignmentError: refused, the peer misbehaved, went away, or the exchange timed out.
        """
        if not self._finished.wait(timeout):
            self.fail(
                AlignmentError(
                    f"the exchange did not finish within {timeout:g} s", code="psi.timeout"
                )
            )
        if self._failure is not None:
            # let the abort go out and the peer hang up; cut the call only if it lingers
            lingering = not (self._sent_all.wait(2.0) and self._finished.wait(2.0))
            if lingering and self._cancel is not None:
                self._cancel()
            raise self._failure

    def check_done(self, *counts: tuple[str, int, int]) -> None:
        """Accept the peer's done message only if every ``(what, expected, seen)`` agrees.

        Raises:
            AlignmentError: ``psi.count``, naming the first count that disagrees.
        """
        for field, expected, seen in counts:
            if expected != seen:
                raise AlignmentError(
                    mismatch(f"at done, {field}", expected, seen), code="psi.count"
                )

    def fail(self, exc: CvflError) -> None:
        """Record the first failure, stop sending (an abort goes out) and wake every waiter."""
        with self._lock:
            if self._failure is not None:
                return
            self._failure = exc
        log.warning("psi: %s", exc.message)
        self._out.put(None)
        self._failed()

    def _failed(self) -> None:
        """Hook: wake the subclass's waiters after a failure."""

    @property
    def failed(self) -> bool:
        """Whether the exchange has failed."""
        return self._failure is not None

    # ----- receiving ---------------------------------------------------------------------
    def _receive(self, inbound: Iterable[psi_pb2.PsiFrame]) -> None:
        try:
            for frame in inbound:
                if self.failed:
                    break
                self._handle(frame)
            if not self.failed and not self._complete():
                raise AlignmentError(self._lost("the stream ended"), code="psi.peer_lost")
        except CvflError as exc:
            self.fail(exc)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                self.fail(AlignmentError("the exchange deadline passed", code="psi.timeout"))
            else:
                how = f"the call failed ({code})"
                self.fail(AlignmentError(self._lost(how), code="psi.peer_lost"))
        except Exception as exc:
            self.fail(internal("receiving", exc))
        finally:
            self._finished.set()

    def _handle(self, frame: psi_pb2.PsiFrame) -> None:
        """Raise an abort, pass the hello to :meth:`_on_hello`, the rest (after it) on."""
        kind = frame.WhichOneof("body")
        if kind == "abort":
            raise serde.abort_from_proto(frame.abort, self._peer_role)
        if kind == "hello":
            self._on_hello(serde.hello_from_proto(frame.hello))
            return
        if self.peer is None:
            raise AlignmentError(mismatch("first frame", "hello", kind), code="psi.protocol")
        self._on_frame(kind, frame, self.peer)

    def _on_hello(self, hello: serde.PsiHello) -> None:
        raise NotImplementedError

    def _on_frame(self, kind: str | None, frame: psi_pb2.PsiFrame, peer: serde.PsiHello) -> None:
        """Handle a frame other than abort and hello, after the peer's hello."""
        raise NotImplementedError

    def _complete(self) -> bool:
        """Whether the peer's side is complete (its stream may end now)."""
        raise NotImplementedError

    def _lost(self, how: str) -> str:
        raise NotImplementedError

    def check_hello(self, hello: serde.PsiHello) -> serde.PsiHello:
        """Accept the peer's (single) hello if version, job, role, mode and group agree.

        Raises:
            AlignmentError: a second hello (``psi.protocol``) or a field differs (``psi.hello``).
        """
        if self.peer is not None:
            raise AlignmentError(mismatch("hello", "exactly one", "a second"), code="psi.protocol")
        for field, mine, theirs in (
            ("version", self.me.version, hello.version),
            ("job_id", self.me.job_id, hello.job_id),
            ("role", self._peer_role, hello.role),
            ("mode", self.me.mode, hello.mode),
            ("group", self.me.group, hello.group),
        ):
            if mine != theirs:
                raise AlignmentError(
                    mismatch(f"peer hello {field}", mine, theirs), code="psi.hello"
                )
        problems = declared_terms_problems(self._attested, hello.terms)
        if problems:
            raise AlignmentError(declared_terms_refusal(problems), code="psi.terms")
        self.peer = hello
        return hello


PEER_ITEMS_FACTOR = 4


def check_peer_size(announced: int, own: int, max_peer_items: int | None) -> None:
    """Refuse a peer set larger than ``max_peer_items``.

    The default (None) is 4 x this party's ``own`` item count, counting an empty set as one
    item so that it still aligns (to an empty result) with a small peer.

    Raises:
        AlignmentError: ``psi.peer_too_large``, naming the limit and the announced size.
    """
    if max_peer_items is not None:
        limit, why = max_peer_items, "[psi] max_peer_items"
    else:
        limit = PEER_ITEMS_FACTOR * max(own, 1)
        why = f"{PEER_ITEMS_FACTOR} x this party's {own} items; [psi] max_peer_items allows more"
    if announced > limit:
        raise AlignmentError(
            mismatch("peer's announced set size", f"at most {limit} ({why})", announced),
            code="psi.peer_too_large",
        )


def internal(what: str, exc: Exception) -> AlignmentError:
    """An unexpected failure, reported (to both sides) as ``psi.internal``."""
    return AlignmentError(
        f"internal failure while {what}: {type(exc).__name__}: {exc}", code="psi.internal"
    )
