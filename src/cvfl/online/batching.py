"""Micro-batching: concurrent requests gathered for a short wait, then handled as one batch."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from cvfl.errors import PeerUnavailableError
from cvfl.logs import get_logger
from cvfl.online.request import ScoreRequest, ScoreResult

log = get_logger(__name__)


@dataclass
class Pending:
    """A request waiting in a batch; ``features`` holds its inline rows, if it brought any.

    ``arrived`` (monotonic seconds) bounds the wait: the follower's answer is awaited until the
    earliest arrival of the batch plus ``[serve] follower_timeout``. ``prepared_by`` is what
    prepared ``features`` (the leader's serving state; a reload may replace it meanwhile).
    """

    request: ScoreRequest
    features: np.ndarray | None = None
    prepared_by: object = None
    future: Future[list[ScoreResult]] = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


Handler = Callable[[list[Pending]], Callable[[], None]]
PIPELINE_DEPTH = 2
_STOP = Pending(ScoreRequest(()))


class MicroBatcher:
    """One thread takes requests off a queue and hands them to ``handle`` in batches.

    A batch closes after ``max_wait`` seconds from its first request or once it holds
    ``max_batch`` ids (a larger request is a batch of its own); when no other batch is under
    way it takes what is queued and leaves at once. ``handle`` starts a batch and
    returns its completion, which a second thread runs in order, so one batch is started while
    the previous one is finished. At most ``PIPELINE_DEPTH`` batches are under way: while they
    are, requests wait in the queue and the next batch takes them all (up to ``max_batch``), so
    batches grow with the load. A batch that raises fails only its own requests' futures; both
    threads carry on.
    """

    def __init__(self, handle: Handler, max_wait: float, max_batch: int) -> None:
        self._handle = handle
        self._max_wait = max_wait
        self._max_batch = max_batch
        self._queue: queue.Queue[Pending] = queue.Queue()
        self._carry: Pending | None = None
        self._closed = threading.Event()
        self._pipe: queue.Queue[tuple[list[Pending], Callable[[], None]] | None] = queue.Queue()
        self._slots = threading.Semaphore(PIPELINE_DEPTH)
        self._under_way = 0  # batches handed to the finisher and not finished
        self._count_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cvfl-serve-batch", daemon=True)
        self._finisher = threading.Thread(
            target=self._finish, name="cvfl-serve-finish", daemon=True
        )
        self._thread.start()
        self._finisher.start()

    def submit(self, pending: Pending) -> Future[list[ScoreResult]]:
        """Queue a request; its future gets one result per id.

        Raises:
            PeerUnavailableError: the batcher is draining (``serve.draining``).
        """
        if self._closed.is_set():
            raise PeerUnavailableError("the service is shutting down", code="serve.draining")
        self._queue.put(pending)
        return pending.future

    def _next(self, timeout: float | None) -> Pending | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _gather(self, first: Pending) -> list[Pending]:
        batch, size = [first], len(first.request.ids)
        # Waiting only pays while another batch is under way: on an idle pipeline the batch
        # takes what is queued and leaves at once.
        deadline = time.monotonic() + (self._max_wait if self._under_way else 0.0)
        while size < self._max_batch:
            item = self._next(max(0.0, deadline - time.monotonic()))
            if item is None:
                break
            if item is _STOP or size + len(item.request.ids) > self._max_batch:
                self._carry = item
                break
            batch.append(item)
            size += len(item.request.ids)
        return batch

    def _run(self) -> None:
        while True:
            first = self._next(None)
            if first is None or first is _STOP:
                self._pipe.put(None)
                return
            self._slots.acquire()  # meanwhile, later requests queue up for this batch
            batch = self._gather(first)
            try:
                complete = self._handle(batch)
            except Exception as exc:  # a batch's failure fails only its own requests
                self._slots.release()
                _fail(batch, exc)
                continue
            self._count(+1)
            self._pipe.put((batch, complete))

    def _count(self, change: int) -> None:
        with self._count_lock:
            self._under_way += change

    def _finish(self) -> None:
        while (item := self._pipe.get()) is not None:
            batch, complete = item
            try:
                complete()
            except Exception as exc:
                _fail(batch, exc)
            finally:
                self._count(-1)
                self._slots.release()

    def close(self, timeout: float) -> None:
        """Refuse new requests, finish the queued ones (up to ``timeout`` seconds), stop."""
        self._closed.set()
        self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        self._finisher.join(max(0.0, deadline - time.monotonic()))


def _fail(batch: list[Pending], exc: Exception) -> None:
    log.exception("serve: a batch of %d requests failed", len(batch))
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)
