"""Local phases of ECDH-PSI: blinding one's own ids, and intersecting the doubly-blinded sets."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvfl.errors import AlignmentError
from cvfl.logs import get_logger
from cvfl.psi.group import Blinder
from cvfl.psi.source import iter_id_chunks
from cvfl.psi.spill import BUCKETS, BucketStore, Keys, Rows, keys_from_bytes, keys_to_bytes

log = get_logger(__name__)

SHOW_ROWS = 5


@dataclass(frozen=True)
class Duplicates:
    """Rows whose id repeats an earlier row's (0-based row numbers, first few only)."""

    count: int
    first_rows: tuple[int, ...]


def blind_own(
    path: Path,
    id_column: str,
    *,
    label: bytes,
    blinder: Blinder,
    pool: Executor,
    chunk_rows: int,
    lookahead: int,
    store: BucketStore,
) -> int:
    """Read, canonicalise, hash and blind every id of ``path`` into ``store``; return the count."""
    pending: deque[tuple[int, Future[bytes]]] = deque()

    def drain_one() -> None:
        start, future = pending.popleft()
        keys = keys_from_bytes(future.result())
        store.add(keys, np.arange(start, start + len(keys), dtype=np.int64))

    for chunk in iter_id_chunks(path, id_column, chunk_rows):
        pending.append((chunk.start, pool.submit(blinder.hash_and_blind, label, chunk.items)))
        while len(pending) > lookahead:
            drain_one()
    while pending:
        drain_one()
    log.info("psi: blinded %d own ids (%d spills)", store.count, store.spills)
    return store.count


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
    """This party's rows of the intersection (in ascending doubly-blinded or keyed-hash order).

    :func:`cvfl.psi.report.write_rows` lays them out in the agreed order.
    """

    rows: Rows


def intersect(own_d: BucketStore, peer_d: BucketStore) -> Intersection:
    """Join own (D, row) records with the peer's D values bucket by bucket, in D order.

    Raises:
        AlignmentError: the peer answered two of our items with the same value.
    """
    parts: list[Rows] = []
    for b in range(BUCKETS):
        keys, rows = own_d.bucket(b)
        if repeats(keys).any():
            raise AlignmentError(
                f"the peer answered two different items of bucket {b} with the same "
                "doubly-blinded value",
                code="psi.bad_answer",
            )
        peer_keys, _ = peer_d.bucket(b)
        mask = np.isin(keys, peer_keys)
        parts.append(rows[mask])
    rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return Intersection(rows)
