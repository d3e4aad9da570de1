"""One party's fast-mode alignment: agree a key with the attested peer, swap keyed hashes, join.

Own ids are read in chunks, canonicalised as in ECDH mode and hashed with
``HMAC-SHA256(session key, canonical id)`` into a spilling bucket store; duplicates are found
there; the de-duplicated keyed hashes go to the peer in ascending order. Both sides intersect
and write their rows in ascending keyed-hash order, which both know.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Unpack

import numpy as np

from cvfl.bridge.security import ChannelSecurity
from cvfl.errors import AlignmentError
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.config import AlignJob, AlignOptions, PsiConfig
from cvfl.psi.fast.gate import gate_for
from cvfl.psi.fast.session import FastSession
from cvfl.psi.keyed import KeyedHasher
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
from cvfl.psi.spill import BUCKETS, BucketStore, Rows, keys_from_bytes

log = get_logger(__name__)

MODE = "fast"
READ_CHUNK = 1 << 16


def hash_own(path: Path, id_column: str, hasher: KeyedHasher, store: BucketStore) -> int:
    """Read, canonicalise and key-hash every id of ``path`` into ``store``; return the count."""
    for chunk in iter_id_chunks(path, id_column, READ_CHUNK):
        keys = keys_from_bytes(hasher.tags(chunk.items))
        store.add(keys, np.arange(chunk.start, chunk.start + len(keys), dtype=np.int64))
    log.info("psi: key-hashed %d own ids (%d spills)", store.count, store.spills)
    return store.count


def fast_intersect(own: BucketStore, peer: BucketStore, own_rows: int) -> Intersection:
    """Join own (tag, row) records (first row of each tag) with the peer's tags.

    Raises:
        AlignmentError: the peer sent the same keyed hash twice.
    """
    return row_mask(own_rows, _joined(own, peer))


def _joined(own: BucketStore, peer: BucketStore) -> Iterator[Rows]:
    for b in range(BUCKETS):
        all_keys, all_rows = own.bucket(b)
        keep = ~repeats(all_keys)
        keys, rows = all_keys[keep], all_rows[keep]
        peer_keys, _ = peer.bucket(b)
        if repeats(peer_keys).any():
            raise AlignmentError(
                f"the peer sent the same keyed hash twice (bucket {b}): its set is not "
                "de-duplicated",
                code="psi.bad_tag",
            )
        if not len(peer_keys) or not len(keys):
            continue
        at = np.minimum(np.searchsorted(peer_keys, keys), len(peer_keys) - 1)
        yield rows[peer_keys[at] == keys]


def align_fast(
    job: AlignJob, cfg: PsiConfig, security: ChannelSecurity, **options: Unpack[AlignOptions]
) -> AlignReport:
    """Run fast mode for this party (called by :func:`cvfl.psi.align` for ``mode = "fast"``).

    Raises:
        AlignmentError: fast mode refused (``psi.fast_refused``), duplicates, a misbehaving or
            vanished peer, a timeout.
        PeerUnavailableError: the peer never showed up.
    """
    gate = gate_for(security, cfg)
    gate.check_local()
    t0 = time.perf_counter()
    stats: dict[str, float] = {}
    with (
        BucketStore("own", threshold=cfg.spill_threshold, spill_dir=cfg.spill_dir) as own,
        BucketStore("peer", threshold=cfg.spill_threshold, spill_dir=cfg.spill_dir) as peer,
    ):

        def produce(hasher: KeyedHasher) -> tuple[int, Iterator[bytes]]:
            start = time.perf_counter()
            stats["rows"] = hash_own(job.data, job.id_column, hasher, own)
            dups = find_duplicates(own)
            if dups.count and cfg.duplicates == "error":
                raise duplicate_error(job.data, dups)
            stats["dups"] = dups.count
            stats["hash"] = time.perf_counter() - start
            batches = (tags for tags, _ in own_batches(own, cfg.batch_size))
            return own.count - dups.count, batches

        me = serde.PsiHello(job.job_id, job.role, 0, MODE, cfg.batch_size)
        session = FastSession(
            me=me,
            peer_role=job.peer_role,
            gate=gate,
            produce=produce,
            window=cfg.window,
            peer_store=peer,
            max_peer_items=cfg.max_peer_items,
        )
        run_session(job, cfg, security, session, options.get("on_bound"))
        found = fast_intersect(own, peer, int(stats.get("rows", 0)))
        spills = own.spills + peer.spills
    t1 = time.perf_counter()
    counts = Counts(int(stats["rows"]), int(stats["dups"]), session.peer_count, spills)
    marks = (t0, t0 + stats["hash"], t1)
    return finish_alignment(
        job, cfg, options["keys"], found, channel=security.name, counts=counts, marks=marks
    )
