"""The schedule of ``[data] reader = "stream"``: a split and shuffle that need no table in memory.

Both parties' aligned tables hold the same ids in the same order, so each derives the same
schedule from the id column alone (read once, streamed) and the shared job settings:

* **Held-out rows.** Row ``i`` is held out when the first 8 bytes of
  ``HMAC-SHA256(key, id_i)`` (big-endian) are below ``holdout_fraction * 2**64``, with the key
  derived from the job id and seed. About that fraction of rows is held out, and which ones does
  not depend on the table's order or length.
* **Two-level shuffle.** Rows ``[b * block_rows, (b + 1) * block_rows)`` form block ``b``. Each
  epoch permutes the blocks (seeded by seed and epoch), groups them ``shuffle_blocks`` at a time
  into *windows*, and permutes each window's training rows (seeded by seed, epoch and window).
  An epoch is the concatenation of its windows' rows, cut into batches of ``batch_size`` (a
  batch may straddle two windows; the epoch's last batch may be short).

Steps per epoch, total steps and the rows of any step follow from the per-block training counts
alone, so a resume at step ``s`` starts at the window holding step ``s + 1``'s first row without
going through the steps before it. The reader (:mod:`cvfl.train.stream`) follows
:meth:`StreamSchedule.windows` and loads one window ahead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from cvfl.errors import ConfigError
from cvfl.train.schedule import Step

_KEY_DOMAIN = b"cvfl/holdout/v1"


def holdout_key(job_id: str, seed: int) -> bytes:
    """The key of the held-out hash: SHA-256 of a domain, the job id and the seed."""
    job = job_id.encode("utf-8")
    return hashlib.sha256(
        _KEY_DOMAIN + struct.pack("<I", len(job)) + job + str(seed).encode()
    ).digest()


def held_out(key: bytes, ids: Iterable[str], fraction: float) -> np.ndarray:
    """Whether each id's row is held out (a keyed hash below ``fraction`` of its range)."""
    threshold = math.floor(fraction * 2.0**64)
    return np.fromiter(
        (
            int.from_bytes(hmac.digest(key, i.encode("utf-8"), "sha256")[:8], "big") < threshold
            for i in ids
        ),
        dtype=bool,
    )


@dataclass(frozen=True)
class StreamSchedule:
    """Held-out split, block and window shuffles and batches of the streamed reader.

    ``holdout`` marks the held-out rows (one byte per row: the only per-row state).
    """

    num_rows: int
    holdout_fraction: float
    seed: int
    batch_size: int
    epochs: int
    max_steps: int
    eval_batch_size: int
    block_rows: int
    shuffle_blocks: int
    holdout: np.ndarray = field(repr=False, compare=False)
    workers: int = 1

    def __post_init__(self) -> None:
        if len(self.holdout) != self.num_rows:
            raise ValueError("one held-out flag per row")
        held = int(self.holdout.sum())
        if held in (0, self.num_rows):
            what = "no row is held out" if held == 0 else "every row is held out"
            raise ConfigError(
                f"[data] holdout_fraction = {self.holdout_fraction} on {self.num_rows} rows: "
                f"{what} by the streamed reader's hash; use more rows or another fraction",
                code="config.data",
            )

    @property
    def train_mask(self) -> np.ndarray:
        """Whether each row is a training row."""
        return self._mask

    @cached_property
    def _mask(self) -> np.ndarray:
        return ~self.holdout

    @cached_property
    def holdout_rows(self) -> np.ndarray:
        """Indices of the held-out rows, ascending."""
        return np.flatnonzero(self.holdout)

    def first_train_row(self) -> int:
        """The first training row (probes use it)."""
        return int(np.argmax(self.train_mask))

    @property
    def blocks(self) -> int:
        """Logical blocks of ``block_rows`` rows (the last may be short)."""
        return math.ceil(self.num_rows / self.block_rows)

    @cached_property
    def train_counts(self) -> np.ndarray:
        """Training rows in each block."""
        starts = np.arange(0, self.num_rows, self.block_rows)
        return np.add.reduceat(self.train_mask.astype(np.int64), starts)

    @property
    def train_total(self) -> int:
        """Training rows in the table."""
        return int(self.train_counts.sum())

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (the last may be short)."""
        return math.ceil(self.train_total / self.batch_size)

    @property
    def total_steps(self) -> int:
        """Steps the whole job trains."""
        full = self.steps_per_epoch * self.epochs
        return min(full, self.max_steps) if self.max_steps else full

    def windows_of(self, epoch: int) -> list[np.ndarray]:
        """Epoch ``epoch``'s windows: its block permutation, ``shuffle_blocks`` at a time.

        With several workers, block ``b`` belongs to worker ``b % workers``; each worker's blocks
        are permuted on their own and the permutations interleaved, and a window takes
        ``shuffle_blocks`` blocks of each worker (the last window: what is left).
        """
        order = self._block_order(epoch)
        size = self.shuffle_blocks * self.workers
        return [order[i : i + size] for i in range(0, self.blocks, size)]

    def _block_order(self, epoch: int) -> np.ndarray:
        if self.workers == 1:
            return np.random.default_rng([self.seed, 3, epoch]).permutation(self.blocks)
        own = [
            np.random.default_rng([self.seed, 3, epoch, w]).permutation(
                np.arange(w, self.blocks, self.workers)
            )
            for w in range(self.workers)
        ]
        return np.asarray(
            [int(part[i]) for i in range(len(own[0])) for part in own if i < len(part)],
            dtype=np.int64,
        )

    def worker_rows(self, rows: np.ndarray, worker: int) -> np.ndarray:
        """Worker ``worker``'s part of a step's ``rows``: those in its own blocks.

        When that would leave some worker no row at all (a short last batch), the step is
        split into ``workers`` consecutive parts instead (read outside the window plan).
        """
        if self.workers == 1:
            return rows
        owners = (rows // self.block_rows) % self.workers
        part: np.ndarray
        if np.bincount(owners, minlength=self.workers).min() > 0:
            part = rows[owners == worker]
        else:
            part = np.array_split(rows, self.workers)[worker]
        return part

    def owns(self, rows: np.ndarray, worker: int) -> bool:
        """Whether every row of ``rows`` lies in a block of worker ``worker``."""
        return bool(((rows // self.block_rows) % self.workers == worker).all())

    def window_rows(self, epoch: int, index: int, blocks: np.ndarray) -> np.ndarray:
        """The training rows of window ``index`` of ``epoch`` in their shuffled order."""
        rows = np.concatenate([self.block_train_rows(int(b)) for b in blocks])
        return rows[np.random.default_rng([self.seed, 4, epoch, index]).permutation(len(rows))]

    def block_train_rows(self, block: int) -> np.ndarray:
        """The training rows of ``block``, ascending."""
        start = block * self.block_rows
        return start + np.flatnonzero(self.train_mask[start : start + self.block_rows])

    def _window_starts(self, windows: list[np.ndarray]) -> np.ndarray:
        counts = [int(self.train_counts[w].sum()) for w in windows]
        return np.concatenate([[0], np.cumsum(counts)])

    def _position(self, start: int) -> tuple[int, int, int]:
        """(epoch, window, offset in it) of the first row of step ``start + 1``."""
        epoch, index = divmod(start, self.steps_per_epoch)
        starts = self._window_starts(self.windows_of(epoch))
        pos = index * self.batch_size
        window = int(np.searchsorted(starts, pos, side="right")) - 1
        return epoch, window, pos - int(starts[window])

    def windows(self, start: int = 0, worker: int | None = None) -> Iterator[np.ndarray]:
        """The blocks of every window the steps after ``start`` read, in order.

        ``worker``: only that worker's blocks of each window (windows without any are skipped).
        """
        if start >= self.total_steps:
            return
        epoch, window, _ = self._position(start)
        for e in range(epoch, self.epochs):
            for blocks in self.windows_of(e)[window if e == epoch else 0 :]:
                mine = blocks if worker is None else blocks[blocks % self.workers == worker]
                if len(mine):
                    yield mine

    def steps(self, start: int = 0) -> Iterator[Step]:
        """Yield steps after global step ``start`` (no step before it is generated)."""
        number = start
        while number < self.total_steps:
            epoch, window, offset = self._position(number)
            batches = self._batches(epoch, window, offset)
            first = number % self.steps_per_epoch
            for i in range(first, self.steps_per_epoch):
                number += 1
                rows = next(batches)
                yield Step(
                    number, epoch, rows, i == self.steps_per_epoch - 1 or number == self.total_steps
                )
                if number == self.total_steps:
                    return

    def _batches(self, epoch: int, window: int, offset: int) -> Iterator[np.ndarray]:
        """The epoch's batches from row ``offset`` of window ``window`` on."""
        windows = self.windows_of(epoch)
        pending = self.window_rows(epoch, window, windows[window])[offset:]
        while True:
            while len(pending) >= self.batch_size:
                yield pending[: self.batch_size]
                pending = pending[self.batch_size :]
            window += 1
            if window >= len(windows):
                break
            pending = np.concatenate([pending, self.window_rows(epoch, window, windows[window])])
        if len(pending):
            yield pending

    def eval_batches(self) -> Iterator[np.ndarray]:
        """The held-out rows in fixed batches, ascending."""
        rows = self.holdout_rows
        for i in range(0, len(rows), self.eval_batch_size):
            yield rows[i : i + self.eval_batch_size]

    def digest(self) -> bytes:
        """A hash of every setting and of the split, exchanged in the hello."""
        fields = {
            k: getattr(self, k)
            for k in (
                "num_rows",
                "holdout_fraction",
                "seed",
                "batch_size",
                "epochs",
                "max_steps",
                "eval_batch_size",
                "block_rows",
                "shuffle_blocks",
            )
        }
        if self.workers > 1:  # one worker's schedule (and its digest) is as it always was
            fields["workers"] = self.workers
        blob = json.dumps(fields, sort_keys=True).encode()
        split = hashlib.sha256(np.packbits(self.holdout).tobytes()).digest()
        return hashlib.sha256(b"cvfl/schedule/stream/v1" + blob + split).digest()
