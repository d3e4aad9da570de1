"""One party's whole alignment: blind own ids, exchange with the peer, intersect, write output."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cvfl.bridge.security import ChannelSecurity
from cvfl.data.tables import table_format
from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.psi import serde
from cvfl.psi.config import AlignJob, PsiConfig
from cvfl.psi.exchange import Session
from cvfl.psi.fastrun import align_fast
from cvfl.psi.group import Blinder, domain_label, get_group
from cvfl.psi.report import AlignReport, write_report, write_rows
from cvfl.psi.service import run_session
from cvfl.psi.sets import blind_own, duplicate_error, find_duplicates, intersect, own_batches
from cvfl.psi.spill import BucketStore, default_threads
from cvfl.sealing import KeyProvider

log = get_logger(__name__)


def require_protection(cfg: PsiConfig, keys: KeyProvider | None) -> None:
    """Refuse an aligned table that would be neither sealed nor asked for in plaintext.

    Raises:
        ConfigError: ``psi.unsealed_output``.
    """
    if keys is None and not cfg.plaintext_output:
        raise ConfigError(
            mismatch(
                "psi output protection", "a [sealing] key or psi.plaintext_output = true", "neither"
            ),
            code="psi.unsealed_output",
        )


def align(
    job: AlignJob,
    cfg: PsiConfig,
    security: ChannelSecurity,
    *,
    keys: KeyProvider | None,
    on_bound: Callable[[int], None] | None = None,
) -> AlignReport:
    """Align this party's table with the peer's and write its rows of the intersection.

    The leader serves on ``job.address`` (``on_bound`` receives the bound port); the follower
    connects to it. The output is sealed under ``keys`` with purpose ``aligned-table``; without
    keys, ``cfg.plaintext_output`` must be set.

    Raises:
        ConfigError: no key provider and plaintext output not asked for.
        DataError: the input table cannot be read.
        AlignmentError: duplicate ids, a misbehaving or vanished peer, a timeout.
        PeerUnavailableError: the peer never showed up.
    """
    require_protection(cfg, keys)
    table_format(job.data)
    if cfg.mode == "fast":
        return align_fast(job, cfg, security, keys=keys, on_bound=on_bound)
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
        run_session(job, cfg, security, session, on_bound)
        found = intersect(own_d, peer_d)
        spills = own_a.spills + own_d.spills + peer_d.spills
        t2 = time.perf_counter()
    fingerprint = write_rows(job, cfg, keys, found.rows)
    t3 = time.perf_counter()
    report = AlignReport(
        job_id=job.job_id,
        role=job.role,
        mode=cfg.mode,
        channel=security.name,
        own_rows=rows,
        duplicates_dropped=dups.count,
        peer_items=session.peer.count if session.peer else 0,
        intersection=len(found.rows),
        order_fingerprint=fingerprint.hex(),
        output=str(cfg.output),
        sealed=keys is not None,
        spills=spills,
        seconds_blind=round(t1 - t0, 3),
        seconds_exchange=round(t2 - t1, 3),
        seconds_output=round(t3 - t2, 3),
        seconds_total=round(t3 - t0, 3),
    )
    write_report(cfg, report)
    return report


def run_leader(
    job: AlignJob,
    cfg: PsiConfig,
    security: ChannelSecurity,
    *,
    keys: KeyProvider | None,
    on_bound: Callable[[int], None] | None = None,
) -> AlignReport:
    """Run :func:`align` as the leader (checks the role)."""
    _role(job, "leader")
    return align(job, cfg, security, keys=keys, on_bound=on_bound)


def run_follower(
    job: AlignJob, cfg: PsiConfig, security: ChannelSecurity, *, keys: KeyProvider | None
) -> AlignReport:
    """Run :func:`align` as the follower (checks the role)."""
    _role(job, "follower")
    return align(job, cfg, security, keys=keys)


def _role(job: AlignJob, role: str) -> None:
    if job.role != role:
        raise ConfigError(mismatch("job.role", role, job.role), code="config.value")
