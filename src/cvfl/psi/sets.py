"""Local phases shared by both modes: duplicate ids, own batches in order, the intersection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvfl.errors import AlignmentError
from cvfl.psi.spill import BucketStore, Keys, Rows, keys_to_bytes

SHOW_ROWS = 5


@dataclass(frozen=True)
class Duplicates:
    """Rows whose id repeats an earlier row's (0-based row numbers, first few only)."""

    count: int
    first_rows: tuple[int, ...]


def repeats(keys: Keys) -> np.ndarray:
    """Mask of entries equal to their predecessor (keys sorted)."""
    mask = np.zeros(len(keys), dtype=bool)
    if len(keys) > 1:
        mask[1:] = keys[1:] == keys[:-1]
    return mask


def find_duplicates(store: BucketStore) -> Duplicates:
    """Count rows repeating an earlier row's id, with the first few such row numbers."""
    count = 0
    first: list[int] = []
    for keys, rows in store.sorted_buckets():
        mask = repeats(keys)
        count += int(mask.sum())
        first = sorted([*first, *rows[mask][:SHOW_ROWS].tolist()])[:SHOW_ROWS]
    return Duplicates(count, tuple(first))


def duplicate_error(path: Path, dups: Duplicates) -> AlignmentError:
    """The refusal for duplicate ids: how many and the first row numbers, never the ids."""
    rows = ", ".join(str(r) for r in dups.first_rows)
    return AlignmentError(
        f"{path}: {dups.count} rows repeat an id of an earlier row (first at rows {rows}; "
        "0-based data rows); set psi.duplicates = 'drop' to keep only each id's first row",
        code="psi.duplicates",
    )


def own_batches(store: BucketStore, batch_size: int) -> Iterator[tuple[bytes, Rows]]:
    """Yield own blinded points in ascending order (a random order to the peer), de-duplicated."""
    for all_keys, all_rows in store.sorted_buckets():
        keep = ~repeats(all_keys)
        keys, rows = all_keys[keep], all_rows[keep]
        for i in range(0, len(keys), batch_size):
            yield keys_to_bytes(keys[i : i + batch_size]), rows[i : i + batch_size]


@dataclass(frozen=True)
class Intersection:
    """This party's rows of the intersection: ``mask[i]`` is true when row ``i`` is in it.

    One byte per own row, however the rows are found; :func:`cvfl.psi.report.write_rows` lays
    them out in the agreed order.
    """

    mask: npt.NDArray[np.bool_]

    @property
    def count(self) -> int:
        """Rows in the intersection."""
        return int(np.count_nonzero(self.mask))


def row_mask(own_rows: int, parts: Iterator[Rows]) -> Intersection:
    """The :class:`Intersection` of ``own_rows`` rows whose row numbers ``parts`` yields."""
    mask = np.zeros(own_rows, dtype=np.bool_)
    for rows in parts:
        mask[rows] = True
    return Intersection(mask)
