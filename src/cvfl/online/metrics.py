"""The serving metrics, written in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    """Cumulative buckets, a sum and a count (not thread-safe; :class:`Metrics` locks)."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.help = help_text
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self) -> list[str]:
        """The histogram's exposition lines."""
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{self.name}_bucket{{le="{bound:g}"}} {running}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        out += [f"{self.name}_sum {self.sum:.9g}", f"{self.name}_count {self.count}"]
        return out


def _counter(name: str, help_text: str, labels: tuple[str, ...], counts: Counter[Any]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    for key, value in sorted(counts.items()):
        values = key if isinstance(key, tuple) else (key,)
        pairs = ",".join(f'{k}="{v}"' for k, v in zip(labels, values, strict=True))
        out.append(f"{name}{{{pairs}}} {value}")
    return out


class Metrics:
    """What ``/metrics`` reports: requests, latency, batch sizes, follower round trips, fallbacks.

    Labels are fixed words chosen by cvfl (API, outcome, reason), never request data.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.latency = Histogram(
            "cvfl_serve_request_seconds", "Time to answer a scoring request.", LATENCY_BUCKETS
        )
        self.batch = Histogram(
            "cvfl_serve_batch_ids", "Ids per micro-batch sent to the follower.", BATCH_BUCKETS
        )
        self.rtt = Histogram(
            "cvfl_serve_follower_rtt_seconds",
            "Round trip of one micro-batch to the follower.",
            LATENCY_BUCKETS,
        )
        self.follower_up: Callable[[], bool] = lambda: False

    def request(self, api: str, outcome: str, seconds: float) -> None:
        """Count one answered request (``api``: grpc or http; ``outcome``: ok, invalid, ...)."""
        with self._lock:
            self.requests[api, outcome] += 1
            self.latency.observe(seconds)

    def batch_sent(self, ids: int, seconds: float | None) -> None:
        """Count one micro-batch and, if the follower answered, its round trip."""
        with self._lock:
            self.batch.observe(ids)
            if seconds is not None:
                self.rtt.observe(seconds)

    def fallback(self, reason: str, count: int) -> None:
        """Count ``count`` ids answered by the fallback for ``reason``."""
        if count:
            with self._lock:
                self.fallbacks[reason] += count

    def text(self) -> str:
        """The exposition text."""
        with self._lock:
            lines = _counter(
                "cvfl_serve_requests_total",
                "Scoring requests answered.",
                ("api", "outcome"),
                self.requests,
            )
            lines += self.latency.lines() + self.batch.lines() + self.rtt.lines()
            lines += _counter(
                "cvfl_serve_fallbacks_total",
                "Ids answered by the fallback.",
                ("reason",),
                self.fallbacks,
            )
            lines += [
                "# HELP cvfl_serve_follower_connected Whether the follower's channel is up.",
                "# TYPE cvfl_serve_follower_connected gauge",
                f"cvfl_serve_follower_connected {int(self.follower_up())}",
            ]
        return "\n".join(lines) + "\n"
