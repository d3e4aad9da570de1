"""What a training run reports, and where a party's outputs go."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvfl.fsutil import atomic_write_bytes
from cvfl.train.metrics import Metrics


@dataclass
class TrainResult:
    """The outcome of one party's run."""

    role: str
    steps: int
    seconds: float
    export: Path | None = None
    fingerprint: str = ""
    metrics: Metrics | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    examples: int = 0
    reconnects: int = 0
    session_examples: int = 0  # trained by this process (a resumed run counts only these)
    privacy: dict[str, Any] | None = None
    best_step: int = 0  # early stopping: the step whose state was exported (0: the last)
    stopped_early: bool = False
    cpu_seconds: float = 0.0  # this process's CPU time (every thread) over ``seconds``

    @property
    def exported_step(self) -> int:
        """The step whose state the export holds (the best one with early stopping)."""
        return self.best_step or self.steps

    @property
    def examples_per_second(self) -> float:
        """Training throughput of this process."""
        return self.session_examples / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (metrics and counts only; no data)."""
        return {
            "role": self.role,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "examples_per_second": round(self.examples_per_second, 1),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "export": str(self.export) if self.export else None,
            "fingerprint": self.fingerprint,
            "task": self.metrics.task if self.metrics else None,
            "metrics": self.metrics.as_dict() if self.metrics else None,
            "history": self.history,
            "reconnects": self.reconnects,
            "privacy": self.privacy,
            "early_stopping": (
                {"best_step": self.best_step, "stopped_early": self.stopped_early}
                if self.best_step
                else None
            ),
        }

    def write(self, folder: Path) -> Path:
        """Write ``<role>-result.json`` atomically."""
        path = folder / f"{self.role}-result.json"
        atomic_write_bytes(path, json.dumps(self.to_json(), indent=2).encode() + b"\n")
        return path


@dataclass
class RunClock:
    """The wall-clock and process CPU time of a run, from the clock's creation."""

    wall: float = field(default_factory=time.perf_counter)
    cpu: float = field(default_factory=time.process_time)

    def stop(self, result: TrainResult) -> None:
        """Set ``result``'s ``seconds`` and ``cpu_seconds`` to the time since the start."""
        result.seconds = time.perf_counter() - self.wall
        result.cpu_seconds = time.process_time() - self.cpu
