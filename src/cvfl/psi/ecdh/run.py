"""One party's ECDH-PSI: blind own ids, exchange with the peer, intersect, write output.

Own ids are read in chunks, hashed to the group and blinded on a thread pool into a spilling
bucket store; the de-duplicated blinded points go to the peer in ascending order; the peer's
answers (our ids, doubly blinded) are joined with its own doubly-blinded set bucket by bucket.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np

from cvfl.bridge.security import ChannelSecurity
from cvfl.errors import AlignmentError
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.config import AlignJob, AlignOptions, PsiConfig
from cvfl.psi.ecdh.exchange import Session
from cvfl.psi.ecdh.group import Blinder, domain_label, get_group
from cvfl.psi.ecdh.resuming import Saver
from cvfl.psi.ecdh.saving import StateFolder, binding_of
from cvfl.psi.ecdh.state import Blinded, Intersected, Manifest
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
from cvfl.psi.spill import (
    BUCKETS,
    BucketStore,
    Rows,
    StoreState,
    default_threads,
    keys_from_bytes,
)
from cvfl.sealing import KeyProvider

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

    With a sealed output the alignment saves its state (:mod:`cvfl.psi.ecdh.saving`) and a
    rerun continues from it. When the saved state does not match the peer's, both sides drop
    it and start over once, in this call.

    Raises:
        DataError: the input table cannot be read.
        AlignmentError: duplicate ids, a misbehaving or vanished peer, a timeout.
        PeerUnavailableError: the peer never showed up.
        SealingError: the saved state does not open under this job's key.
    """
    keys = options["keys"]
    folder = state_folder(job, cfg, keys)
    on_bound = options.get("on_bound")
    ports: list[int] = []

    def bound(port: int) -> None:
        ports.append(port)
        if on_bound is not None:
            on_bound(port)

    try:
        return _align_once(job, cfg, security, folder, keys, bound)
    except AlignmentError as exc:
        if exc.code != "psi.resume_mismatch":
            raise
        log.warning("psi: %s; starting over", exc.message)
    if folder is not None:
        folder.discard()
    return _align_once(_same_port(job, ports), cfg, security, folder, keys, bound)


def state_folder(job: AlignJob, cfg: PsiConfig, keys: KeyProvider | None) -> StateFolder | None:
    """The state folder of a resumable alignment (None with a plaintext output: no resume)."""
    if keys is None:
        log.info(
            "psi: the output is plaintext, so no state is saved: an interrupted alignment "
            "starts over"
        )
        return None
    return StateFolder(cfg.state_path, keys, binding_of(job, cfg))


def _same_port(job: AlignJob, ports: list[int]) -> AlignJob:
    """The leader listens again on the port it was given (the follower knows that one)."""
    host, _, port = job.address.rpartition(":")
    if job.role == "leader" and port == "0" and ports:
        return dataclasses.replace(job, address=f"{host}:{ports[0]}")
    return job


def _align_once(
    job: AlignJob,
    cfg: PsiConfig,
    security: ChannelSecurity,
    folder: StateFolder | None,
    keys: KeyProvider | None,
    on_bound: Callable[[int], None],
) -> AlignReport:
    manifest = folder.load() if folder is not None else None
    if folder is not None and manifest is not None and manifest.intersected is not None:
        return _finish_saved(job, cfg, folder, manifest, keys, security.name)
    threads = cfg.threads or default_threads()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads, thread_name_prefix="psi") as pool, ExitStack() as stack:
        if manifest is None:
            own = _blind_fresh(job, cfg, folder, pool, threads, stack)
        else:
            own = _blinded_saved(cfg, folder, manifest, stack)
        t1 = time.perf_counter()
        stores = _exchange_stores(cfg, folder, own.manifest, stack)
        saver = None
        if folder is not None and own.manifest is not None:
            saver = Saver(folder, own.manifest, every=cfg.checkpoint_batches, stores=stores)
        session = _session(job, cfg, own, stores, saver, pool)
        run_session(job, cfg, security, session, on_bound)
        found = intersect(stores[0], stores[1], own.rows)
        spills = own.store.spills + stores[0].spills + stores[1].spills
        peer_items = session.peer.count if session.peer else 0
        if folder is not None and saver is not None:
            _save_intersection(folder, saver.manifest, found, peer_items, spills, own.store)
        t2 = time.perf_counter()
    counts = Counts(own.rows, own.duplicates, peer_items, spills)
    return _finish(
        job, cfg, keys, found, folder, channel=security.name, counts=counts, marks=(t0, t1, t2)
    )


def _session(
    job: AlignJob,
    cfg: PsiConfig,
    own: _Own,
    stores: tuple[BucketStore, BucketStore],
    saver: Saver | None,
    pool: Executor,
) -> Session:
    """This party's side of the exchange: its hello (nonce, resumed session) and its stores."""
    me = serde.PsiHello(
        job.job_id,
        job.role,
        own.rows - own.duplicates,
        cfg.mode,
        cfg.batch_size,
        own.blinder.group.name,
        nonce=saver.nonce if saver else secrets.token_bytes(serde.NONCE_BYTES),
        resume=saver.resume if saver else None,
    )
    return Session(
        me=me,
        peer_role=job.peer_role,
        own=own_batches(own.store, cfg.batch_size),
        blinder=own.blinder,
        pool=pool,
        window=cfg.window,
        own_d=stores[0],
        peer_d=stores[1],
        max_peer_items=cfg.max_peer_items,
        saver=saver,
    )


def _finish(
    job: AlignJob,
    cfg: PsiConfig,
    keys: KeyProvider | None,
    found: Intersection,
    folder: StateFolder | None,
    **how: Unpack[_How],
) -> AlignReport:
    """Write the output and the report, then drop the state (also after ``psi.empty``)."""
    try:
        report = finish_alignment(job, cfg, keys, found, **how)
    except AlignmentError as exc:
        if folder is not None and exc.code == "psi.empty":
            folder.discard()  # a definite outcome: a rerun aligns afresh
        raise
    if folder is not None:
        folder.discard()
    return report


class _How(TypedDict):
    channel: str
    counts: Counts
    marks: tuple[float, float, float]


@dataclass
class _Own:
    """This party's blinded ids (fresh or saved) and what the exchange needs of them."""

    store: BucketStore
    blinder: Blinder
    rows: int
    duplicates: int
    manifest: Manifest | None


def _blind_fresh(
    job: AlignJob,
    cfg: PsiConfig,
    folder: StateFolder | None,
    pool: Executor,
    threads: int,
    stack: ExitStack,
) -> _Own:
    if folder is not None:
        folder.discard()  # leftovers of a run that never reached checkpoint A
        folder.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    durable = folder.durable if folder is not None else None
    store = BucketStore(
        "own", threshold=cfg.spill_threshold, spill_dir=cfg.spill_dir, durable=durable
    )
    stack.enter_context(store)
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
        store=store,
    )
    dups = find_duplicates(store)
    if dups.count and cfg.duplicates == "error":
        raise duplicate_error(job.data, dups)
    manifest = None
    if folder is not None:
        blinded = Blinded(blinder.secret_for_sealing(), rows, dups.count, store.commit())
        manifest = Manifest(folder.binding, secrets.token_bytes(32), blinded)
        folder.save(manifest)
        log.info("psi: blinded ids saved in %s", folder.folder)
    return _Own(store, blinder, rows, dups.count, manifest)


def _blinded_saved(
    cfg: PsiConfig, folder: StateFolder | None, manifest: Manifest, stack: ExitStack
) -> _Own:
    assert folder is not None
    saved = manifest.blinded
    store = BucketStore.reopen(
        "own", threshold=cfg.spill_threshold, durable=folder.durable, state=saved.own
    )
    stack.enter_context(store)
    blinder = Blinder(get_group(cfg.group), secret=saved.secret)
    log.info("psi: continuing with the %d own ids blinded in an earlier run", saved.rows)
    return _Own(store, blinder, saved.rows, saved.duplicates, manifest)


def _exchange_stores(
    cfg: PsiConfig, folder: StateFolder | None, manifest: Manifest | None, stack: ExitStack
) -> tuple[BucketStore, BucketStore]:
    held = manifest.session if manifest is not None else None
    made: list[BucketStore] = []
    for name in ("own-d", "peer-d"):
        if folder is not None and held is not None:
            state = held.own_d if name == "own-d" else held.peer_d
            store = BucketStore.reopen(
                name, threshold=cfg.spill_threshold, durable=folder.durable, state=state
            )
        else:
            durable = folder.durable if folder is not None else None
            store = BucketStore(
                name, threshold=cfg.spill_threshold, spill_dir=cfg.spill_dir, durable=durable
            )
        made.append(stack.enter_context(store))
    return made[0], made[1]


def _save_intersection(
    folder: StateFolder,
    manifest: Manifest,
    found: Intersection,
    peer_items: int,
    spills: int,
    own: BucketStore,
) -> None:
    """Checkpoint B: the mask is saved; the secret and every store are dropped."""
    folder.save_mask(found.mask)
    empty = StoreState(0, 0, tuple(() for _ in range(BUCKETS)))
    blinded = dataclasses.replace(manifest.blinded, secret=bytes(32), own=empty)
    done = Intersected(peer_items, spills)
    folder.save(dataclasses.replace(manifest, blinded=blinded, session=None, intersected=done))
    folder.drop_exchange_files()
    own.drop()
    log.info("psi: exchange finished; intersection saved in %s", folder.folder)


def _finish_saved(
    job: AlignJob,
    cfg: PsiConfig,
    folder: StateFolder,
    manifest: Manifest,
    keys: KeyProvider | None,
    channel: str,
) -> AlignReport:
    """Write the output from an intersection an earlier run saved (no peer needed)."""
    assert manifest.intersected is not None
    log.info("psi: the exchange finished in an earlier run; writing the saved intersection")
    saved, done = manifest.blinded, manifest.intersected
    found = Intersection(folder.load_mask(saved.rows))
    now = time.perf_counter()
    counts = Counts(saved.rows, saved.duplicates, done.peer_items, done.spills)
    return _finish(
        job, cfg, keys, found, folder, channel=channel, counts=counts, marks=(now, now, now)
    )
