"""The symmetric PSI exchange over one bidirectional message stream.

Each side sends a hello, then its singly-blinded points in batches (at most ``window`` awaiting
an answer), answers every batch of the peer with the doubly-blinded points in the same order,
and sends ``done`` when it has sent everything. The receiving side runs in its own thread; the
outgoing side is a generator the transport drains. Any refusal is sent to the peer as an abort.
With a :class:`~cvfl.psi.ecdh.resuming.Saver` the session saves its progress and may continue
an interrupted one (:class:`~cvfl.psi.ecdh.resuming.Plan`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from cvfl.errors import AlignmentError, CvflError, mismatch
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.ecdh.group import POINT_BYTES, Blinder, check_length
from cvfl.psi.ecdh.resuming import Plan, Saver, refuse_stateless
from cvfl.psi.spill import BucketStore, Rows, keys_from_bytes
from cvfl.psi.stream import FrameStream, check_peer_size, internal
from cvfl.wire import psi_pb2

log = get_logger(__name__)

OwnBatches = Iterable[tuple[bytes, Rows]]


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


class Session(FrameStream):
    """One party's side of the ECDH exchange; results land in ``own_d`` and ``peer_d``."""

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
        max_peer_items: int | None = None,
        saver: Saver | None = None,
    ) -> None:
        super().__init__(me=me, peer_role=peer_role)
        self._max_peer_items = max_peer_items
        self._own = own
        self._blinder = blinder
        self._pool = pool
        self._window = threading.Semaphore(window)
        self.own_d = own_d
        self.peer_d = peer_d
        self._store_lock = threading.Lock()
        self._inflight: dict[int, Rows] = {}
        self._n = _Counters()
        self._peer_ok = threading.Event()
        self._saver = saver
        self._plan = Plan()
        self._stored: set[int] = set()
        self._stored_prefix = 0  # the peer's batches 0..prefix-1 are all in peer_d

    def _started(self) -> None:
        threading.Thread(target=self._send_own, daemon=True).start()

    def _failed(self) -> None:
        self._peer_ok.set()

    # ----- sending -----------------------------------------------------------------------
    def _send_own(self) -> None:
        self._peer_ok.wait()
        try:
            for i, (points, rows) in enumerate(self._own):
                if i < self._plan.own_start:
                    self._skip(rows)
                    continue
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
            self.fail(internal("sending own batches", exc))

    def _skip(self, rows: Rows) -> None:
        """An own batch answered in the interrupted session: count it, do not send it."""
        with self._lock:
            n = self._n
            n.sent_batches += 1
            n.answered_batches += 1
            n.sent_items += len(rows)
            n.answered_items += len(rows)

    def _answer(self, index: int, points: bytes) -> psi_pb2.PsiFrame:
        doubled = self._blinder.blind_points(points, batch=index, what="blinded")
        keys = keys_from_bytes(doubled)
        with self._store_lock:
            if index >= self._plan.peer_kept:
                self.peer_d.add(keys, np.zeros(len(keys), dtype=np.int64))
            if index >= self._stored_prefix:
                self._stored.add(index)
            while self._stored_prefix in self._stored:
                self._stored.discard(self._stored_prefix)
                self._stored_prefix += 1
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
    def _complete(self) -> bool:
        return self._n.closed

    def _lost(self, how: str) -> str:
        n = self._n
        return (
            f"the peer disconnected midway: {how} after {n.recv_batches} of its batches and "
            f"{n.answered_batches} answers, before its done message"
        )

    def _on_frame(self, kind: str | None, frame: psi_pb2.PsiFrame, peer: serde.PsiHello) -> None:
        if kind == "batch":
            self._on_batch(frame.batch.index, frame.batch.points, peer)
        elif kind == "ret":
            self._on_return(frame.ret.index, frame.ret.points)
        elif kind == "done":
            self._on_done(frame.done, peer)
        else:
            raise AlignmentError(mismatch("frame", "a known kind", kind), code="psi.protocol")

    def _on_hello(self, hello: serde.PsiHello) -> None:
        self.check_hello(hello)
        log.info("psi: peer %s announces %d items", hello.role, hello.count)
        # before any own point goes out or any of the peer's is answered
        check_peer_size(hello.count, self.me.count, self._max_peer_items)
        if self._saver is None:
            refuse_stateless(hello)
        else:
            self._plan = plan = self._saver.agree(self.me, hello)
            with self._lock:
                self._n.recv_batches = plan.peer_start
                self._n.recv_items = plan.peer_items_before
            with self._store_lock:
                self._stored_prefix = plan.peer_kept
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
        if self._saver is not None:
            self._saver.check_batch(index, points, len(points) // POINT_BYTES)
        self._out.put(self._pool.submit(self._answer, index, points))
        with self._lock:
            n.recv_batches += 1
            n.recv_items = total
        self._maybe_checkpoint()  # also while only the peer's batches still come
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
        self._blinder.check_answers(points, batch=index, what="answer")
        with self._store_lock:
            if index >= self._plan.own_kept:
                self.own_d.add(keys_from_bytes(points), rows)
        with self._lock:
            n.answered_batches += 1
            n.answered_items += len(rows)
        self._maybe_checkpoint()
        self._window.release()
        self._advance()

    def _maybe_checkpoint(self) -> None:
        """Save the progress when due (in the receiving thread, which alone adds to own_d)."""
        # own_d holds the answers to batches 0..K-1: those saved before, then those since (in
        # order); the sending thread may still be counting skipped batches
        with self._lock:
            answered = max(self._n.answered_batches, self._plan.own_kept)
        if self._saver is not None and self._saver.due(answered):
            with self._store_lock:
                self._saver.checkpoint(answered, self._stored_prefix)

    def _on_done(self, done: psi_pb2.PsiDone, peer: serde.PsiHello) -> None:
        n = self._n
        self.check_done(
            ("items the peer sent", peer.count, n.recv_items),
            ("items the peer answered", self.me.count, n.answered_items),
            ("peer's own count of items sent", n.recv_items, done.sent),
        )
        with self._lock:
            n.peer_done = True
        self._advance()
