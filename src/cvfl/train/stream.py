"""``[data] reader = "stream"``: a party's training table read a window of blocks at a time.

Opening the table reads only its id column (and the leader's labels): that gives the held-out
split (:mod:`cvfl.train.stream_schedule`), the id-order fingerprint the hello carries and the
labels, which stay in memory (one number per row). The features are read when a step needs
them: training steps follow the schedule's window plan (:meth:`StreamTable.start`), holding the
windows a batch reads and loading the next one on a background thread; held-out evaluation and
other reads outside the plan decode just the blocks they touch. The checkpoint binding's data
digest is computed by one streamed pass that also checks every row.

With ``[data.columns]`` the preprocessing is fitted after the id pass, one column at a time, on
the rows not held out (:mod:`cvfl.train.stream_prep`), and every read goes through it.

What stays in memory grows with rows only by the held-out flags (1 byte a row) and the leader's
labels (8 bytes a row); the rest is bounded by ``block_rows x shuffle_blocks`` rows of features
(two or three windows at a time), the Parquet row groups being decoded, the batch and the model;
fitting ``[data.columns]`` holds one column of every row at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cvfl.data.columns import ColumnsSpec
from cvfl.data.ids import streamed_order_fingerprint
from cvfl.data.prep import Preprocessing
from cvfl.data.tables import TableSchema
from cvfl.logs import get_logger
from cvfl.sealing import KeyProvider
from cvfl.train.stream_prep import fit_streamed
from cvfl.train.stream_schedule import held_out, holdout_key
from cvfl.train.stream_source import READ_ROWS, ParquetSource, streamed_digest

log = get_logger(__name__)
_ID_PASS_ROWS = 1 << 16  # rows whose ids the id pass decodes at a time


@dataclass(frozen=True)
class Loaded:
    """Decoded blocks: their rows concatenated in ``blocks`` order."""

    blocks: np.ndarray
    starts: np.ndarray  # where each block's rows begin in ``ids`` and ``features``
    ids: np.ndarray  # Python strings (object array)
    features: np.ndarray


@dataclass(frozen=True)
class Split:
    """What the id pass found: the held-out flags, the id-order fingerprint and the labels."""

    holdout: np.ndarray
    fingerprint: bytes
    labels: np.ndarray | None


def id_pass(
    source: ParquetSource, job_id: str, seed: int, fraction: float, *, labels: bool
) -> Split:
    """Read the ids (and labels) once: held-out flags, fingerprint and labels, checked."""
    key = holdout_key(job_id, seed)
    flags: list[np.ndarray] = []
    kept: list[np.ndarray] = []

    def parts() -> Iterator[tuple[str, ...]]:
        for start, stop in source.ranges(_ID_PASS_ROWS):
            rows = source.read(start, stop, labels=labels, ids_only=True)
            flags.append(held_out(key, rows.ids, fraction))
            if rows.labels is not None:
                kept.append(rows.labels)
            yield rows.ids

    fingerprint = streamed_order_fingerprint(job_id, source.rows, parts())
    return Split(np.concatenate(flags), fingerprint, np.concatenate(kept) if kept else None)


class StreamTable:
    """A party's training table, streamed (see the module docstring).

    It offers what training reads of a :class:`~cvfl.data.tables.PartyTable` (``path``,
    ``feature_names``, ``labels``, ``prep``, ``rows``) and reads features and ids by row
    (:meth:`take`).
    """

    def __init__(self, source: ParquetSource, split: Split, block_rows: int) -> None:
        self.source = source
        self.path: Path = source.path
        self.feature_names = source.feature_names
        self.labels = split.labels
        self.holdout = split.holdout
        self.fingerprint = split.fingerprint
        self.block_rows = block_rows
        blocks = -(-source.rows // block_rows)
        self._where = np.full(blocks, -1, dtype=np.int64)  # window holding each block
        self._offset = np.zeros(blocks, dtype=np.int64)
        self._windows: dict[int, Loaded] = {}
        self._next_id = 0
        self._plan: Iterator[np.ndarray] = iter(())
        self._future: Future[Loaded] | None = None
        self._scratch: Loaded | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._digest: str | None = None
        first = source.read(0, min(1, source.rows))
        self.dtype: np.dtype[Any] = first.features.dtype  # what reads return
        self.store = storage_dtype(self.dtype, source.schema.vocab)  # what windows hold
        self.width = first.features.shape[1]

    @property
    def prep(self) -> Preprocessing | None:
        """The fitted ``[data.columns]`` preprocessing every read goes through, if any."""
        return self.source.prep

    @property
    def rows(self) -> int:
        """Rows in the table."""
        return self.source.rows

    def data_digest(self) -> str:
        """The binding's digest of the features and labels (one streamed pass, computed once)."""
        if self._digest is None:
            self._digest = streamed_digest(self.source, self.labels, READ_ROWS, self.dtype)
        return self._digest

    def start(self, plan: Iterator[np.ndarray]) -> None:
        """Follow ``plan`` (the schedule's windows from the step training resumes after)."""
        with self._lock:
            if self._future is not None:
                self._future.cancel()
            self._future = None
            self._windows.clear()
            self._rebuild()
            self._plan = plan
            self._prefetch()

    def take(self, rows: np.ndarray, *, planned: bool) -> tuple[list[str], np.ndarray]:
        """The ids and features of ``rows``.

        ``planned``: a training step's rows, read through the window plan (windows before the
        ones these rows need are dropped). Other reads decode the blocks they touch and keep
        them for the next such read (held-out batches come in row order).
        """
        with self._lock:
            blocks = rows // self.block_rows
            need = np.unique(blocks)
            if planned:
                self._advance(need)
            if self._covered(need):
                if planned:
                    self._drop_before(int(self._where[need].min()))
                return self._gather(rows, blocks)
            return self._read_apart(rows, blocks, need)

    def _read_apart(
        self, rows: np.ndarray, blocks: np.ndarray, need: np.ndarray
    ) -> tuple[list[str], np.ndarray]:
        """Rows outside the window plan, decoded one block at a time.

        Only the last block decoded is kept (held-out batches come in row order, so the next
        batch may start in it): what a held-out batch costs does not depend on how far apart
        its rows lie in the table.
        """
        features = np.empty((len(rows), self.width), dtype=self.dtype)
        ids = np.empty(len(rows), dtype=object)
        for block in need.tolist():
            if self._scratch is None or self._scratch.blocks.tolist() != [block]:
                self._scratch = None  # freed before the next block is decoded
                self._scratch = self._load(np.asarray([block], dtype=np.int64))
            mask = blocks == block
            got_ids, got = _gather_from(
                self._scratch, rows[mask], self.block_rows, self.width, self.dtype
            )
            features[mask] = got
            ids[mask] = got_ids
        return ids.tolist(), features

    def _covered(self, need: np.ndarray) -> bool:
        return bool((self._where[need] >= 0).all())

    def _advance(self, need: np.ndarray) -> None:
        """Take windows from the plan until ``need`` is loaded (or the plan ends)."""
        while not self._covered(need):
            window = self._next()
            if window is None:
                log.debug("a planned read went past the window plan: reading its blocks directly")
                return
            self._windows[self._next_id] = window
            self._next_id += 1
            self._rebuild()

    def _next(self) -> Loaded | None:
        """The next window of the plan (prefetched, or loaded now); start the one after it."""
        future, self._future = self._future, None
        window = future.result() if future is not None else None
        self._prefetch()
        return window

    def _prefetch(self) -> None:
        blocks = next(self._plan, None)
        if blocks is None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="cvfl-stream")
        self._future = self._pool.submit(self._load, np.asarray(blocks))

    def _drop_before(self, first: int) -> None:
        old = [w for w in self._windows if w < first]
        for w in old:
            del self._windows[w]
        if old:
            self._rebuild()

    def _rebuild(self) -> None:
        """Point each block at the oldest loaded window holding it (never one dropped early)."""
        self._where[:] = -1
        for wid in sorted(self._windows, reverse=True):
            window = self._windows[wid]
            self._where[window.blocks] = wid
            self._offset[window.blocks] = window.starts

    def _gather(self, rows: np.ndarray, blocks: np.ndarray) -> tuple[list[str], np.ndarray]:
        where = self._where[blocks]
        pos = self._offset[blocks] + rows - blocks * self.block_rows
        features = np.empty((len(rows), self.width), dtype=self.dtype)
        ids = np.empty(len(rows), dtype=object)
        for wid in np.unique(where):
            mask = where == wid
            window = self._windows[int(wid)]
            features[mask] = window.features[pos[mask]]
            ids[mask] = window.ids[pos[mask]]
        return ids.tolist(), features

    def _load(self, blocks: np.ndarray) -> Loaded:
        """Decode ``blocks`` (any thread: each has its own open file) into one window."""
        starts = blocks * self.block_rows
        sizes = np.minimum(starts + self.block_rows, self.rows) - starts
        at = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        features = np.empty((int(at[-1]), self.width), dtype=self.store)
        ids = np.empty(int(at[-1]), dtype=object)
        for i in np.argsort(starts).tolist():  # in file order: a row group is decoded once
            start, stop = int(starts[i]), int(starts[i] + sizes[i])
            for low in range(start, stop, READ_ROWS):
                high = min(low + READ_ROWS, stop)
                rows = self.source.read(low, high, dtype=self.store)  # the codes fit (checked)
                where = slice(int(at[i]) + low - start, int(at[i]) + high - start)
                features[where] = rows.features
                ids[where] = rows.ids
        pa.default_memory_pool().release_unused()  # the decode's Arrow buffers, freed above
        return Loaded(np.asarray(blocks, dtype=np.int64), at[:-1], ids, features)


def storage_dtype(dtype: np.dtype[Any], vocab: int) -> np.dtype[Any]:
    """The narrowest type that holds the table's values in a window.

    Category codes below ``vocab`` fit int16 or int32 (reads widen them back to int64); numeric
    values stay float32.
    """
    if dtype.kind != "i":
        return dtype
    for narrow in (np.int16, np.int32):
        if vocab <= np.iinfo(narrow).max + 1:
            return np.dtype(narrow)
    return dtype


def _gather_from(
    loaded: Loaded, rows: np.ndarray, block_rows: int, width: int, dtype: np.dtype[Any]
) -> tuple[list[str], np.ndarray]:
    """Rows of one loaded set of blocks (``loaded.blocks`` ascending)."""
    blocks = rows // block_rows
    pos = loaded.starts[np.searchsorted(loaded.blocks, blocks)] + rows - blocks * block_rows
    features = np.asarray(loaded.features[pos], dtype=dtype).reshape(len(rows), width)
    return loaded.ids[pos].tolist(), features


def open_stream(
    path: Path,
    schema: TableSchema,
    keys: KeyProvider | None,
    *,
    sealed: bool | None,
    split: tuple[str, int, float],
    block_rows: int,
    columns: ColumnsSpec | None = None,
) -> StreamTable:
    """Open ``path`` for streamed training, run the id pass and fit ``[data.columns]``.

    Args:
        path: The training table (Parquet, plaintext or sealed).
        schema: What it must hold (the leader's names the label column).
        keys: The party's sealing keys, if any.
        sealed: The aligned table's required form (None: the user's own table, either form).
        split: The job id, seed and held-out fraction the held-out hash uses.
        block_rows: Rows per logical block.
        columns: The job's ``[data.columns]``: fitted on the rows not held out
            (:func:`cvfl.train.stream_prep.fit_streamed`), then applied to every row read.
    """
    source = ParquetSource(path, schema, keys, sealed=sealed)
    job_id, seed, fraction = split
    found = id_pass(source, job_id, seed, fraction, labels=schema.label_column is not None)
    log.info(
        "streaming %s: %s rows in %s row groups, %s held out",
        path.name,
        source.rows,
        len(source.group_starts) - 1,
        int(found.holdout.sum()),
    )
    if columns is not None:
        source.prep = fit_streamed(source, columns, found.holdout)
    return StreamTable(source, found, block_rows)
