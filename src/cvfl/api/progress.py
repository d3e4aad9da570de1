"""Progress for Python callers: a :class:`cvfl.train.Progress` object or a plain callable."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from cvfl.train.metrics import Metrics
    from cvfl.train.party import Progress

StepCallback = Callable[[int, int, float | None], object]
"""``callback(step, total_steps, loss)`` after each step (``loss`` is None on the follower)."""

ProgressLike = Union["Progress", StepCallback, None]


class CallbackProgress:
    """Adapts a ``(step, total, loss)`` callable to the :class:`cvfl.train.Progress` protocol."""

    def __init__(self, callback: StepCallback) -> None:
        self.callback = callback
        self.total = 0

    def start(self, total_steps: int, description: str, done: int = 0) -> None:
        """Remember the number of steps."""
        self.total = total_steps

    def step(self, number: int, loss: float | None) -> None:
        """Call the callback."""
        self.callback(number, self.total, loss)

    def evaluated(self, step: int, metrics: Metrics) -> None:
        """Ignore (the result carries the metrics)."""

    def finish(self) -> None:
        """Ignore."""


def as_progress(progress: ProgressLike) -> Progress:
    """The progress sink for ``progress``: itself, an adapter of a callable, or none.

    Raises:
        TypeError: neither a Progress object, a callable nor None.
    """
    from cvfl.train.party import NoProgress

    if progress is None:
        return NoProgress()
    if all(callable(getattr(progress, name, None)) for name in ("start", "step", "finish")):
        return progress  # type: ignore[return-value]
    if callable(progress):
        return CallbackProgress(progress)
    raise TypeError(f"progress: expected a Progress object or a callable, seen {progress!r:.80}")
