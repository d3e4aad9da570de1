"""Per-row outputs of a loaded half, computed once while its export is loaded.

A party's serving table does not change while an export is loaded, so neither does what its
half computes from a row: the follower's cut-layer activations, the leader's bottom-tower
output. :class:`RowCache` keeps them by table row. A table of at most ``[serve] cache_ids``
rows is computed whole when the half is loaded; a larger one keeps the ``cache_ids`` rows
used most recently. The cache belongs to the loaded party (:class:`~cvfl.online.party.
ServingParty`): a reload builds a new party, with a new cache, so a reloaded half never
serves an older half's outputs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch

from cvfl.models.nets import LeaderHalf

Compute = Callable[[torch.Tensor], torch.Tensor]
CHUNK_ROWS = 1024  # rows per forward pass while computing a whole table


class RowCache:
    """A function's float32 output rows by table row: whole-table, or the most recent ones.

    ``compute`` maps a batch of feature rows to one output row each, independently of the
    other rows of the batch (a half in eval mode). Safe to use from several threads.
    """

    def __init__(self, compute: Compute, features: np.ndarray, capacity: int) -> None:
        self._compute = compute
        self._features = features
        self.capacity = capacity
        self._lock = threading.Lock()
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()
        self._whole: np.ndarray | None = None
        if 0 < len(features) <= capacity:
            self._whole = self._forward(np.arange(len(features)))

    @property
    def whole(self) -> bool:
        """Whether every row of the table was computed at load."""
        return self._whole is not None

    def __len__(self) -> int:
        """How many rows are held."""
        return len(self._features) if self._whole is not None else len(self._recent)

    def _forward(self, rows: np.ndarray) -> np.ndarray:
        parts = []
        with torch.no_grad():
            for start in range(0, len(rows), CHUNK_ROWS):
                chunk = torch.from_numpy(self._features[rows[start : start + CHUNK_ROWS]])
                parts.append(self._compute(chunk).to(torch.float32).numpy())
        return np.concatenate(parts)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The outputs of table rows ``rows`` (int64 positions, at least one), in that order."""
        if self._whole is not None:
            held: np.ndarray = self._whole[rows]
            return held
        with self._lock:
            wanted = [int(r) for r in rows]
            missing = sorted(set(wanted) - self._recent.keys())
            found: dict[int, np.ndarray] = {}
            if missing:
                found = dict(zip(missing, self._forward(np.asarray(missing)), strict=True))
            out = [found[r] if r in found else self._touch(r) for r in wanted]
            self._recent.update(found)
            while len(self._recent) > self.capacity:
                self._recent.popitem(last=False)
        return np.stack(out)

    def _touch(self, row: int) -> np.ndarray:
        self._recent.move_to_end(row)
        return self._recent[row]


def bottom_outputs(
    module: LeaderHalf,
    cache: RowCache,
    table_rows: np.ndarray,
    inline_features: np.ndarray | None = None,
) -> np.ndarray:
    """The leader's bottom-tower outputs (float32): cached for its table's rows.

    ``table_rows`` holds each row's position in the table, or -1 for a row a request brought
    inline: ``inline_features`` holds those, in order (computed here, never cached).
    """
    inline = table_rows < 0
    if not inline.any():
        return cache.rows(table_rows)
    assert inline_features is not None and len(inline_features) == int(inline.sum())
    with torch.no_grad():
        computed = module.own(torch.from_numpy(inline_features)).to(torch.float32).numpy()
    if inline.all():
        return computed
    out = np.empty((len(table_rows), computed.shape[1]), dtype=np.float32)
    out[inline] = computed
    out[~inline] = cache.rows(table_rows[~inline])
    return out
