"""The run record: wall-clock and CPU time, and their place in ``<role>-result.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cvfl.train.result import RunClock, TrainResult


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    total = 0
    while time.process_time() < end:
        total += 1


def test_run_clock_counts_cpu_time() -> None:
    result = TrainResult(role="leader", steps=0, seconds=0.0)
    timer = RunClock()
    _spin(0.2)
    timer.stop(result)
    assert result.cpu_seconds >= 0.2
    assert result.seconds > 0.0


def test_run_clock_does_not_count_waiting_as_cpu_time() -> None:
    result = TrainResult(role="leader", steps=0, seconds=0.0)
    timer = RunClock()
    time.sleep(0.4)  # waiting on the peer costs wall-clock time, not CPU time
    timer.stop(result)
    assert result.seconds >= 0.4
    assert result.cpu_seconds < result.seconds / 2


def test_result_json_carries_cpu_seconds(tmp_path: Path) -> None:
    result = TrainResult(role="follower", steps=3, seconds=2.0, cpu_seconds=1.23456)
    result.session_examples = 300
    record = json.loads(result.write(tmp_path).read_text())
    assert record["cpu_seconds"] == 1.235
    assert record["examples_per_second"] == 150.0
