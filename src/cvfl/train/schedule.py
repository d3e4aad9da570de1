"""The training schedule both parties derive on their own from the seed and the row count."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Step:
    """One training step: its global number (from 1), epoch and row indices."""

    number: int
    epoch: int
    rows: np.ndarray
    ends_epoch: bool


@dataclass(frozen=True)
class Schedule:
    """Holdout split, per-epoch shuffles and batches, reproducible from the seed alone."""

    num_rows: int
    holdout_fraction: float
    seed: int
    batch_size: int
    epochs: int
    max_steps: int = 0
    eval_batch_size: int = 1024

    @cached_property
    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng([self.seed, 1]).permutation(self.num_rows)
        held = max(1, round(self.holdout_fraction * self.num_rows))
        return np.sort(order[held:]), np.sort(order[:held])

    @property
    def train_rows(self) -> np.ndarray:
        """Indices of the training rows."""
        return self._split[0]

    @property
    def holdout_rows(self) -> np.ndarray:
        """Indices of the held-out rows (evaluated by the leader)."""
        return self._split[1]

    @cached_property
    def train_mask(self) -> np.ndarray:
        """Whether each row is a training row."""
        mask = np.zeros(self.num_rows, dtype=bool)
        mask[self.train_rows] = True
        return mask

    def first_train_row(self) -> int:
        """The first training row (probes use it)."""
        return int(self.train_rows[0])

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (the last may be short)."""
        return math.ceil(len(self.train_rows) / self.batch_size)

    @property
    def total_steps(self) -> int:
        """Steps the whole job trains."""
        full = self.steps_per_epoch * self.epochs
        return min(full, self.max_steps) if self.max_steps else full

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The training rows in epoch ``epoch``'s shuffled order."""
        rng = np.random.default_rng([self.seed, 2, epoch])
        return self.train_rows[rng.permutation(len(self.train_rows))]

    def steps(self, start: int = 0) -> Iterator[Step]:
        """Yield steps after global step ``start``."""
        number = 0
        for epoch in range(self.epochs):
            order = self.epoch_order(epoch)
            for i in range(self.steps_per_epoch):
                number += 1
                if number > self.total_steps:
                    return
                if number <= start:
                    continue
                rows = order[i * self.batch_size : (i + 1) * self.batch_size]
                last = i == self.steps_per_epoch - 1 or number == self.total_steps
                yield Step(number, epoch, rows, last)

    def eval_batches(self) -> Iterator[np.ndarray]:
        """The held-out rows in fixed batches."""
        rows = self.holdout_rows
        for i in range(0, len(rows), self.eval_batch_size):
            yield rows[i : i + self.eval_batch_size]

    def digest(self) -> bytes:
        """A hash of every field, exchanged in the hello."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(b"cvfl/schedule/v1" + blob).digest()
