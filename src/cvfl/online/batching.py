"""Micro-batching: concurrent requests gathered for a short wait, then handled as one batch.

Batches are gathered in an event loop (:class:`LoopThread`), the one the gRPC API runs in, so a
gRPC request joins a batch and gets its answer without a hand-off to another thread; a second
thread finishes the batches (waits for the follower, scores) and hands each finished batch back
to the loop in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from cvfl.errors import PeerUnavailableError
from cvfl.logs import get_logger
from cvfl.online.request import ScoreRequest, ScoreResult

log = get_logger(__name__)
T = TypeVar("T")


@dataclass
class Pending:
    """A request waiting in a batch; ``features`` holds its inline rows, if it brought any.

    ``arrived`` (monotonic seconds) bounds the wait: the follower's answer is awaited until the
    earliest arrival of the batch plus ``[serve] follower_timeout``. ``prepared_by`` is what
    prepared ``features`` (the leader's serving state; a reload may replace it meanwhile).
    ``waiter``, for a request made in the batcher's loop, gets the same outcome as ``future``.
    """

    request: ScoreRequest
    features: np.ndarray | None = None
    prepared_by: object = None
    future: Future[list[ScoreResult]] = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)
    waiter: asyncio.Future[list[ScoreResult]] | None = None


Handler = Callable[[list[Pending]], Callable[[], None]]
PIPELINE_DEPTH = 2


class LoopThread:
    """An asyncio event loop running in a daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` in the loop and wait up to ``timeout`` seconds for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and wait (briefly) for its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)


class MicroBatcher:
    """Gathers requests into batches in ``runner``'s loop and hands them to ``handle``.

    A batch closes after ``max_wait`` seconds from its first request or once it holds
    ``max_batch`` ids (a larger request is a batch of its own); when no other batch is under
    way it takes what has arrived and leaves at once. ``handle`` (called in the loop, so it must
    not block) starts a batch and returns its completion, which a second thread runs in order,
    so one batch is started while the previous one is finished. At most ``PIPELINE_DEPTH``
    batches are under way: while they are, requests wait and the next batch takes them all (up
    to ``max_batch``), so batches grow with the load. A batch that raises fails only its own
    requests; the service carries on. Without ``runner`` the batcher runs a loop of its own.
    """

    def __init__(
        self, handle: Handler, max_wait: float, max_batch: int, runner: LoopThread | None = None
    ) -> None:
        self._handle = handle
        self._max_wait = max_wait
        self._max_batch = max_batch
        self._own = runner is None
        self._runner = runner or LoopThread("cvfl-serve-batch")
        self.loop = self._runner.loop
        self._waiting: deque[Pending] = deque()  # the rest: touched in the loop only
        self._timer: asyncio.TimerHandle | None = None
        self._kick_due = False
        self._under_way = 0
        self._stopped = False
        self._closed = threading.Event()
        self._pipe: queue.Queue[tuple[list[Pending], Callable[[], None]] | None] = queue.Queue()
        self._finisher = threading.Thread(
            target=self._finish, name="cvfl-serve-finish", daemon=True
        )
        self._finisher.start()

    def submit(self, pending: Pending) -> Future[list[ScoreResult]]:
        """Queue a request from any thread; its future gets one result per id.

        Raises:
            PeerUnavailableError: the batcher is draining (``serve.draining``).
        """
        self._refuse_if_closed()
        self.loop.call_soon_threadsafe(self._add, pending)
        return pending.future

    def wait_for(self, pending: Pending) -> asyncio.Future[list[ScoreResult]]:
        """Queue a request from the batcher's own loop; await the result in that loop.

        Raises:
            PeerUnavailableError: the batcher is draining (``serve.draining``).
        """
        self._refuse_if_closed()
        pending.waiter = self.loop.create_future()
        self._add(pending)
        return pending.waiter

    def _refuse_if_closed(self) -> None:
        if self._closed.is_set():
            raise PeerUnavailableError("the service is shutting down", code="serve.draining")

    def _add(self, pending: Pending) -> None:
        if self._stopped:  # arrived after the drain ended
            error = PeerUnavailableError("the service is shutting down", code="serve.draining")
            _fail([pending], error, quiet=True)
            _settle([pending])
            return
        self._waiting.append(pending)
        if not self._kick_due:  # requests arriving in this loop iteration join the batch
            self._kick_due = True
            self.loop.call_soon(self._kick)

    def _kick(self) -> None:
        """Start a batch if one may start now; else make sure one starts when it may."""
        self._kick_due = False
        while self._waiting and self._under_way < PIPELINE_DEPTH:
            full = sum(len(p.request.ids) for p in self._waiting) >= self._max_batch
            if self._under_way and not full:  # another batch is under way: wait for more
                if self._timer is None:
                    wait = self._waiting[0].arrived + self._max_wait - time.monotonic()
                    self._timer = self.loop.call_later(max(0.0, wait), self._on_timer)
                return
            self._start()

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiting and self._under_way < PIPELINE_DEPTH:
            self._start()
        self._kick()

    def _take(self) -> list[Pending]:
        first = self._waiting.popleft()
        batch, size = [first], len(first.request.ids)
        while self._waiting and size + len(self._waiting[0].request.ids) <= self._max_batch:
            item = self._waiting.popleft()
            batch.append(item)
            size += len(item.request.ids)
        return batch

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._take()
        try:
            complete = self._handle(batch)
        except Exception as exc:  # a batch's failure fails only its own requests
            _fail(batch, exc)
            _settle(batch)
            return
        self._under_way += 1
        self._pipe.put((batch, complete))

    def _finish(self) -> None:
        while (item := self._pipe.get()) is not None:
            batch, complete = item
            try:
                complete()
            except Exception as exc:
                _fail(batch, exc)
            finally:
                # a closed loop (RuntimeError) has nobody awaiting in it any more
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(self._finished, batch)

    def _finished(self, batch: list[Pending]) -> None:
        self._under_way -= 1
        _settle(batch)
        self._kick()

    def close(self, timeout: float) -> None:
        """Refuse new requests, finish the waiting ones (up to ``timeout`` seconds), stop."""
        self._closed.set()
        deadline = time.monotonic() + timeout
        try:
            self._runner.call(self._drained(), timeout)
        except TimeoutError:
            log.warning("serve: requests were still under way after %.1f s", timeout)
        self._pipe.put(None)
        self._finisher.join(max(0.0, deadline - time.monotonic()))
        if self._own:
            self._runner.stop()

    async def _drained(self) -> None:
        while self._waiting or self._under_way:
            await asyncio.sleep(0.005)
        self._stopped = True


def _fail(batch: list[Pending], exc: Exception, quiet: bool = False) -> None:
    if not quiet:
        log.exception("serve: a batch of %d requests failed", len(batch))
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)


def _settle(batch: list[Pending]) -> None:
    """Give each loop waiter of ``batch`` its request's outcome (run in the waiters' loop)."""
    for pending in batch:
        waiter, future = pending.waiter, pending.future
        if waiter is None or waiter.done() or not future.done():
            continue
        error = future.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(future.result())
