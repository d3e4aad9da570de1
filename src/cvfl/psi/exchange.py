"""The symmetric PSI exchange over one bidirectional message stream.

Each side sends a hello, then its singly-blinded points in batches (at most ``window`` awaiting
an answer), answers every batch of the peer with the doubly-blinded points in the same order,
and sends ``done`` when it has sent everything. The receiving side runs in its own thread; the
outgoing side is a generator the transport drains. Any refusal is sent to the peer as an abort.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import grpc
import numpy as np

from cvfl.errors import AlignmentError, CvflError, mismatch
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.group import POINT_BYTES, Blinder, check_length, validate_points
from cvfl.psi.spill import BucketStore, Rows, keys_from_bytes
from cvfl.wire import psi_pb2

log = get_logger(__name__)

OwnBatches = Iterable[tuple[bytes, Rows]]
_Out = psi_pb2.PsiFrame | Future[psi_pb2.PsiFrame] | None


@dataclass
class _Counters:
    sent_batches: int = 0
    sent_items: int = 0
    send_finished: bool = False
    recv_batches: int = 0
    recv_items: int = 0
    answered_batches: int = 0
    answered_items: int = 0
    peer_done: bool = False
    done_sent: bool = False
    closed: bool = False


class Session:
    """One party's side of the exchange; results land in ``own_d`` and ``peer_d``."""

    def __init__(
        self,
        *,
        me: serde.PsiHello,
        peer_role: str,
        own: OwnBatches,
        blinder: Blinder,
        pool: Executor,
        window: int,
        own_d: BucketStore,
        peer_d: BucketStore,
    ) -> None:
        self.me = me
        self.peer: serde.PsiHello | None = None
        self._peer_role = peer_role
        self._own = own
        self._blinder = blinder
        self._pool = pool
        self._window = threading.Semaphore(window)
        self.own_d = own_d
        self.peer_d = peer_d
        self._store_lock = threading.Lock()
        self._lock = threading.Lock()
        self._out: queue.Queue[_Out] = queue.Queue()
        self._inflight: dict[int, Rows] = {}
        self._n = _Counters()
        self._failure: CvflError | None = None
        self._peer_ok = threading.Event()
        self._finished = threading.Event()
        self._sent_all = threading.Event()
        self._cancel: Callable[[], None] | None = None

    # ----- driving -----------------------------------------------------------------------
    def start(self, inbound: Iterable[psi_pb2.PsiFrame], cancel: Callable[[], None]) -> None:
        """Queue the hello and start the receiving and sending threads."""
        self._cancel = cancel
        self._out.put(serde.hello_to_proto(self.me))
        for target, arg in ((self._receive, inbound), (self._send_own, None)):
            threading.Thread(target=target, args=(arg,), daemon=True).start()

    def outgoing(self) -> Iterator[psi_pb2.PsiFrame]:
        """Yield the frames to send, in order; ends after ``done`` or an abort."""
        try:
            yield from self._frames()
        finally:
            self._sent_all.set()

    def _frames(self) -> Iterator[psi_pb2.PsiFrame]:
        while True:
            item = self._out.get()
            if self._failure is not None or item is None:
                if self._failure is not None:
                    yield serde.abort_to_proto(self._failure)
                return
            if isinstance(item, Future):
                try:
                    item = item.result()
                except CvflError as exc:
                    self.fail(exc)
                    continue
                except Exception as exc:  # a bug or resource failure must still stop both sides
                    self.fail(_internal("answering a peer batch", exc))
                    continue
            yield item

    def wait(self, timeout: float) -> None:
        """Block until the exchange completed; raise the first failure.

        Raises:
            AlignmentError: the peer misbehaved, went away, or the exchange timed out.
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

    def fail(self, exc: CvflError) -> None:
        """Record the first failure, stop sending (an abort goes out) and wake every waiter."""
        with self._lock:
            if self._failure is not None:
                return
            self._failure = exc
        log.warning("psi: %s", exc.message)
        self._out.put(None)
        self._peer_ok.set()

    @property
    def failed(self) -> bool:
        """Whether the exchange has failed."""
        return self._failure is not None

    # ----- sending -----------------------------------------------------------------------
    def _send_own(self, _: object) -> None:
        self._peer_ok.wait()
        try:
            for points, rows in self._own:
                while not self._window.acquire(timeout=0.2):
                    if self.failed:
                        return
                if self.failed:
                    return
                with self._lock:
                    index = self._n.sent_batches
                    self._inflight[index] = rows
                    self._n.sent_batches += 1
                    self._n.sent_items += len(rows)
                self._out.put(serde.batch_to_proto(index, points))
            with self._lock:
                self._n.send_finished = True
            log.info("psi: sent %d items in %d batches", self._n.sent_items, self._n.sent_batches)
            self._advance()
        except CvflError as exc:
            self.fail(exc)
        except Exception as exc:
            self.fail(_internal("sending own batches", exc))

    def _answer(self, index: int, points: bytes) -> psi_pb2.PsiFrame:
        doubled = self._blinder.blind_points(points, batch=index, what="blinded")
        keys = keys_from_bytes(doubled)
        with self._store_lock:
            self.peer_d.add(keys, np.zeros(len(keys), dtype=np.int64))
        return serde.return_to_proto(index, doubled)

    def _advance(self) -> None:
        """Send ``done`` and close when every condition holds (called after each change)."""
        with self._lock:
            n, peer = self._n, self.peer
            if peer is None or self.failed:
                return
            if not n.done_sent and n.send_finished and n.recv_items == peer.count:
                n.done_sent = True
                self._out.put(serde.done_to_proto(n.sent_items, n.recv_items))
            if n.done_sent and n.peer_done and not n.closed and n.answered_items == self.me.count:
                n.closed = True
                self._out.put(None)

    # ----- receiving ---------------------------------------------------------------------
    def _receive(self, inbound: Iterable[psi_pb2.PsiFrame]) -> None:
        try:
            for frame in inbound:
                if self.failed:
                    break
                self._handle(frame)
            if not self.failed and not self._n.closed:
                raise AlignmentError(self._lost("the stream ended"), code="psi.peer_lost")
        except CvflError as exc:
            self.fail(exc)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                self.fail(AlignmentError("the exchange deadline passed", code="psi.timeout"))
            else:
                self.fail(
                    AlignmentError(self._lost(f"the call failed ({code})"), code="psi.peer_lost")
                )
        except Exception as exc:
            self.fail(_internal("receiving", exc))
        finally:
            self._finished.set()

    def _lost(self, how: str) -> str:
        n = self._n
        return (
            f"the peer disconnected midway: {how} after {n.recv_batches} of its batches and "
            f"{n.answered_batches} answers, before its done message"
        )

    def _handle(self, frame: psi_pb2.PsiFrame) -> None:
        kind = frame.WhichOneof("body")
        if kind == "abort":
            raise serde.abort_from_proto(frame.abort)
        if kind == "hello":
            self._on_hello(serde.hello_from_proto(frame.hello))
            return
        if self.peer is None:
            raise AlignmentError(mismatch("first frame", "hello", kind), code="psi.protocol")
        if kind == "batch":
            self._on_batch(frame.batch.index, frame.batch.points, self.peer)
        elif kind == "ret":
            self._on_return(frame.ret.index, frame.ret.points)
        elif kind == "done":
            self._on_done(frame.done, self.peer)
        else:
            raise AlignmentError(mismatch("frame", "a known kind", kind), code="psi.protocol")

    def _on_hello(self, hello: serde.PsiHello) -> None:
        if self.peer is not None:
            raise AlignmentError(mismatch("hello", "exactly one", "a second"), code="psi.protocol")
        for field, mine, theirs in (
            ("version", self.me.version, hello.version),
            ("job_id", self.me.job_id, hello.job_id),
            ("role", self._peer_role, hello.role),
            ("mode", self.me.mode, hello.mode),
        ):
            if mine != theirs:
                raise AlignmentError(
                    mismatch(f"peer hello {field}", mine, theirs), code="psi.hello"
                )
        self.peer = hello
        log.info("psi: peer %s announces %d items", hello.role, hello.count)
        self._peer_ok.set()
        self._advance()

    def _on_batch(self, index: int, points: bytes, peer: serde.PsiHello) -> None:
        n = self._n
        if index != n.recv_batches:
            raise AlignmentError(
                mismatch("peer batch index", n.recv_batches, index), code="psi.protocol"
            )
        check_length(points, batch=index, what="blinded")
        total = n.recv_items + len(points) // POINT_BYTES
        if total > peer.count:
            raise AlignmentError(
                mismatch(
                    f"peer items after batch {index}", f"at most {peer.count} (announced)", total
                ),
                code="psi.count",
            )
        self._out.put(self._pool.submit(self._answer, index, points))
        with self._lock:
            n.recv_batches += 1
            n.recv_items = total
        if n.recv_batches % 64 == 0:
            log.info("psi: answered %d of %d peer items", total, peer.count)
        self._advance()

    def _on_return(self, index: int, points: bytes) -> None:
        n = self._n
        with self._lock:
            rows = self._inflight.pop(index, None)
        if rows is None or index != n.answered_batches:
            raise AlignmentError(
                mismatch("peer answer index", n.answered_batches, index), code="psi.protocol"
            )
        if len(points) != len(rows) * POINT_BYTES:
            raise AlignmentError(
                mismatch(
                    f"points in the peer's answer to batch {index}",
                    len(rows),
                    f"{len(points) / POINT_BYTES:g}",
                ),
                code="psi.count",
            )
        validate_points(points, batch=index, what="answer")
        with self._store_lock:
            self.own_d.add(keys_from_bytes(points), rows)
        with self._lock:
            n.answered_batches += 1
            n.answered_items += len(rows)
        self._window.release()
        self._advance()

    def _on_done(self, done: psi_pb2.PsiDone, peer: serde.PsiHello) -> None:
        n = self._n
        for field, expected, seen in (
            ("items the peer sent", peer.count, n.recv_items),
            ("items the peer answered", self.me.count, n.answered_items),
            ("peer's own count of items sent", n.recv_items, done.sent),
        ):
            if expected != seen:
                raise AlignmentError(
                    mismatch(f"at done, {field}", expected, seen), code="psi.count"
                )
        with self._lock:
            n.peer_done = True
        self._advance()


def _internal(what: str, exc: Exception) -> AlignmentError:
    return AlignmentError(
        f"internal failure while {what}: {type(exc).__name__}: {exc}", code="psi.internal"
    )
