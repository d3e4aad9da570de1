"""The micro-batcher: requests gathered while a batch is under way, size bounds, failures kept."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from cvfl.errors import PeerUnavailableError
from cvfl.online.batching import MicroBatcher, Pending
from cvfl.online.request import ScoreRequest, ScoreResult

T = TypeVar("T")


class Recorder:
    """A handler that records each batch's ids and answers every id as scored."""

    def __init__(self, gate: threading.Event | None = None, fail_on: str = "") -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self._gate = gate
        self._fail_on = fail_on

    def __call__(self, batch: list[Pending]) -> Callable[[], None]:
        ids = [i for p in batch for i in p.request.ids]
        self.batches.append(ids)
        self.started.set()
        if self._fail_on in ids:
            raise ValueError("this batch fails")

        def complete() -> None:
            if self._gate is not None:
                assert self._gate.wait(10)
            for p in batch:
                p.future.set_result([ScoreResult(i, True) for i in p.request.ids])

        return complete


def _pending(*ids: str) -> Pending:
    return Pending(ScoreRequest(ids))


def test_requests_arriving_while_a_batch_is_under_way_share_the_next() -> None:
    gate = threading.Event()
    handler = Recorder(gate)
    batcher = MicroBatcher(handler, max_wait=0.3, max_batch=100)
    first = batcher.submit(_pending("a"))
    assert handler.started.wait(5)  # "a" is under way, held at the gate
    later = [batcher.submit(_pending(x)) for x in ("b", "c", "d")]
    gate.set()
    assert [r.id for r in first.result(5)] == ["a"]
    assert [f.result(5)[0].id for f in later] == ["b", "c", "d"]
    batcher.close(5)
    assert handler.batches == [["a"], ["b", "c", "d"]]


def test_batches_respect_max_batch_and_a_big_request_goes_alone() -> None:
    gate = threading.Event()
    handler = Recorder(gate)
    batcher = MicroBatcher(handler, max_wait=0.3, max_batch=4)
    futures = [batcher.submit(_pending(f"{k}x", f"{k}y")) for k in range(3)]
    futures.append(batcher.submit(_pending(*"pqrstu")))
    gate.set()
    for f in futures:
        assert all(r.scored for r in f.result(5))
    batcher.close(5)
    assert all(len(b) <= 4 for b in handler.batches if b != list("pqrstu"))
    assert list("pqrstu") in handler.batches
    assert sorted(i for b in handler.batches for i in b) == sorted(
        [f"{k}{c}" for k in range(3) for c in "xy"] + list("pqrstu")
    )


def test_a_failing_batch_fails_only_its_requests_and_drain_refuses_new_ones() -> None:
    batcher = MicroBatcher(Recorder(fail_on="bad"), max_wait=0.0, max_batch=1)
    bad = batcher.submit(_pending("bad"))
    with pytest.raises(ValueError):
        bad.result(5)
    assert batcher.submit(_pending("good")).result(5)[0].scored
    batcher.close(5)
    with pytest.raises(PeerUnavailableError):
        batcher.submit(_pending("late"))


def test_requests_made_in_the_batchers_loop_are_batched_and_answered_there() -> None:
    gate = threading.Event()
    handler = Recorder(gate, fail_on="bad")
    batcher = MicroBatcher(handler, max_wait=0.3, max_batch=100)
    answered_in: list[threading.Thread] = []

    async def queue_all(*ids: str) -> list[asyncio.Future[list[ScoreResult]]]:
        return [batcher.wait_for(_pending(i)) for i in ids]  # one loop iteration

    async def wait(waiter: asyncio.Future[list[ScoreResult]]) -> list[str]:
        results = await waiter
        answered_in.append(threading.current_thread())
        return [r.id for r in results]

    def in_loop(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, batcher.loop).result(5)

    (first,) = in_loop(queue_all("a"))
    assert handler.started.wait(5)  # "a" is under way, held at the gate
    later = in_loop(queue_all("b", "c", "bad"))
    gate.set()
    assert in_loop(wait(first)) == ["a"]
    for waiter in later:  # "b" and "c" shared the failing batch with "bad"
        with pytest.raises(ValueError):
            in_loop(wait(waiter))
    assert handler.batches == [["a"], ["b", "c", "bad"]]
    assert in_loop(wait(in_loop(queue_all("d"))[0])) == ["d"]
    assert len(set(answered_in)) == 1 and answered_in[0] is not threading.current_thread()
    batcher.close(5)
    with pytest.raises(PeerUnavailableError):
        batcher.wait_for(_pending("late"))
