"""One party's ECDH-PSI: blind own ids, exchange with the peer, intersect, write output.

Own ids are read in chunks, hashed to the group and blinded on a thread pool into a spilling
bucket store; the de-duplicated blinded points go to the peer in ascending order; the peer's
answers (our ids, doubly blinded) are joined with its own doubly-blinded set bucket by bucket.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Unpack

import numpy as np

from cvfl.bridge.security import ChannelSecurity
from cvfl.errors import AlignmentError
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.config import AlignJob, AlignOptions, PsiConfig
from cvfl.psi.ecdh.exchange import Session
from cvfl.psi.ecdh.group import Blinder, domain_label, get_group
from cvfl.psi.report import AlignReport, Counts, finish_alignment
from cvfl.psi.service import run_session
from cvfl.psi.sets import (
    Intersection,
    duplicate_error,
    find_duplicates,
    own_batches,
    repeats,
    row_mask,
)
from cvfl.psi.source import iter_id_chunks
from cvfl.psi.spill import BUCKETS, BucketStore, Rows, default_threads, keys_from_bytes

log = get_logger(__name__)


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


def intersect(own_d: BucketStore, peer_d: BucketStore, own_rows: int) -> Intersection:
    """Join own (D, row) records with the peer's D values bucket by bucket.

    Raises:
        AlignmentError: the peer answered two of our items with the same value.
    """
    return row_mask(own_rows, _joined(own_d, peer_d))


def _joined(own_d: BucketStore, peer_d: BucketStore) -> Iterator[Rows]:
    for b in range(BUCKETS):
        keys, rows = own_d.bucket(b)
        if repeats(keys).any():
            raise AlignmentError(
                f"the peer answered two different items of bucket {b} with the same "
                "doubly-blinded value",
                code="psi.bad_answer",
            )
        peer_keys, _ = peer_d.bucket(b)
        yield rows[np.isin(keys, peer_keys)]


def align_ecdh(
    job: AlignJob, cfg: PsiConfig, security: ChannelSecurity, **options: Unpack[AlignOptions]
) -> AlignReport:
    """Run ECDH-PSI for this party (called by :func:`cvfl.psi.align` for ``mode = "ecdh"``).

    Raises:
        DataError: the input table cannot be read.
        AlignmentError: duplicate ids, a misbehaving or vanished peer, a timeout.
        PeerUnavailableError: the peer never showed up.
    """
    threads = cfg.threads or default_threads()
    t0 = time.perf_counter()
    with (
        ThreadPoolExecutor(threads, thread_name_prefix="psi") as pool,
        BucketStore("own", threshold=cfg.spill_threshold, spill_dir=cfg.spill_dir) as own_a,
        BucketStore("own-d", threshold=cfg.spill_threshold, spill_dir=cfg.spill_dir) as own_d,
        BucketStore("peer-d", threshold=cfg.spill_threshold, spill_dir=cfg.spill_dir) as peer_d,
    ):
        group = get_group(cfg.group)
        blinder = Blinder(group)
        rows = blind_own(
            job.data,
            job.id_column,
            label=domain_label(job.job_id, group),
            blinder=blinder,
            pool=pool,
            chunk_rows=cfg.batch_size,
            lookahead=2 * threads,
            store=own_a,
        )
        dups = find_duplicates(own_a)
        if dups.count and cfg.duplicates == "error":
            raise duplicate_error(job.data, dups)
        t1 = time.perf_counter()
        count = rows - dups.count
        me = serde.PsiHello(job.job_id, job.role, count, cfg.mode, cfg.batch_size, group.name)
        session = Session(
            me=me,
            peer_role=job.peer_role,
            own=own_batches(own_a, cfg.batch_size),
            blinder=blinder,
            pool=pool,
            window=cfg.window,
            own_d=own_d,
            peer_d=peer_d,
            max_peer_items=cfg.max_peer_items,
        )
        run_session(job, cfg, security, session, options.get("on_bound"))
        found = intersect(own_d, peer_d, rows)
        spills = own_a.spills + own_d.spills + peer_d.spills
        t2 = time.perf_counter()
    peer_items = session.peer.count if session.peer else 0
    counts = Counts(rows, dups.count, peer_items, spills)
    marks = (t0, t1, t2)
    return finish_alignment(
        job, cfg, options["keys"], found, channel=security.name, counts=counts, marks=marks
    )
