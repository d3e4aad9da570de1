"""Terminal progress for training: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from cvfl.logs import get_logger
from cvfl.train.metrics import Metrics

log = get_logger(__name__)


class TerminalProgress:
    """Renders a training loop's progress; never shows data, only counts and metrics."""

    def __init__(self, label: str, *, status: str = "", interval: float = 5.0) -> None:
        self._label = label
        self._status = status
        self._interval = interval
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._total = 0
        self._last_log = 0.0

    def start(self, total_steps: int, description: str, done: int = 0) -> None:
        """Open the bar at step ``done`` (terminal) or log the start; a previous bar is closed."""
        self.finish()
        self._total = total_steps
        if sys.stderr.isatty():
            self._bar = Progress(
                TextColumn(f"[bold]{self._label}[/] {self._status}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total_steps, completed=done, loss="")
        if done >= total_steps:
            log.info("%s: all %s steps done (resumed at step %s)", self._label, total_steps, done)
        elif done:
            log.info(
                "%s: training steps %s to %s (resumed at step %s) %s",
                self._label,
                done + 1,
                total_steps,
                done,
                self._status,
            )
        else:
            log.info("%s: training %s steps %s", self._label, total_steps, self._status)
        self._last_log = time.monotonic()

    def step(self, number: int, loss: float | None) -> None:
        """Advance the bar; log a line every few seconds when not on a terminal."""
        text = f"loss {loss:.4f}" if loss is not None else ""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=number, loss=text)
            if number >= self._total:
                self.finish()
        elif time.monotonic() - self._last_log >= self._interval or number == self._total:
            log.info("%s: step %s/%s %s %s", self._label, number, self._total, text, self._status)
            self._last_log = time.monotonic()

    def finish(self) -> None:
        """Close the bar (idempotent), so none is drawn again after the summary."""
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task = None, None

    def evaluated(self, step: int, metrics: Metrics) -> None:
        """Log held-out metrics."""
        log.info("%s: held-out after step %s: %s", self._label, step, metrics.summary())
