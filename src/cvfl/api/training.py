"""``train``: one party of a split-training job from Python (what ``cvfl train`` runs).

:func:`prepare_party` and :func:`run_party` are the two halves the CLI's worker and
:func:`cvfl.api.run_local` share.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cvfl.api.jobs import JobLike, as_job
from cvfl.api.progress import ProgressLike, as_progress
from cvfl.api.reruns import Rerun, say_kept
from cvfl.errors import ConfigError, CvflError, mismatch
from cvfl.train.stop import STOPPED

if TYPE_CHECKING:
    from cvfl.bridge.security import ChannelSecurity
    from cvfl.train import JobConfig, Party, Progress, TrainResult
    from cvfl.workers import WorkerContext


def train(
    job: JobLike,
    *,
    progress: ProgressLike = None,
    stop: threading.Event | None = None,
    fresh: bool = False,
    resume_from: int | None = None,
) -> TrainResult:
    """Run this party of the job (one worker) until it ends, then export its half.

    Args:
        job: A loaded job (:func:`cvfl.api.build_job`, :func:`cvfl.train.load_job`) or the path
            of its job file.
        progress: A :class:`cvfl.train.Progress` or a callable ``(step, total, loss)``.
        stop: Set it (from any thread) to end training between steps: the peer is told
            (``train.stopped``), the committed checkpoints are kept and the same call resumes.
        fresh: Move this party's previous run aside first (``cvfl train --fresh``).
        resume_from: Continue this step's checkpoint on purpose (``--resume-from``).

    Returns:
        The result, also written to ``<workdir>/<role>-result.json``.

    Raises:
        CvflError: ``train.stopped`` when ``stop`` ended it; any refusal of the job, the data or
            the peer, as ``cvfl train`` reports it.
    """
    cfg = as_job(job)
    if cfg.train.workers > 1:
        raise ConfigError(
            mismatch(
                "[train] workers with cvfl.api.train",
                "1 (several workers: `cvfl train`, which launches them)",
                cfg.train.workers,
            ),
            code="config.train",
        )
    from cvfl.train.channel import security_for

    security = security_for(cfg, "train")
    party = prepare_party(cfg, security, Rerun(fresh, resume_from))
    result = run_party(party, security, as_progress(progress), stop)
    result.write(cfg.job.workdir)
    return result


def fallback(job: JobLike, *, progress: ProgressLike = None) -> TrainResult:
    """Train and export the leader's leader-only model, the fallback of ``cvfl serve``.

    The leader trains it alone, on its own training table with the job's schedule (see
    :mod:`cvfl.train.fallback`); ``[serve] fallback = "leader_only"`` then scores with it what
    the split model cannot.

    Returns:
        The result, also written to ``<workdir>/leader-only-result.json``.

    Raises:
        ConfigError: the job is not the leader's (``config.fallback``).
        CvflError: a missing or invalid training table, as ``cvfl train`` reports it.
    """
    from cvfl.train.fallback import train_fallback

    return train_fallback(as_job(job), as_progress(progress))


def load_ready_party(
    cfg: JobConfig, security: ChannelSecurity, rerun: Rerun, worker: WorkerContext | None = None
) -> Party:
    """Prepare a rerun if asked, load this worker's party and join its group."""
    from cvfl.train import load_party
    from cvfl.train.training_tables import require_training_table

    rerun.check(worker)
    rank = worker.rank if worker is not None else 0
    rerun.prepare(cfg)
    group = None
    require_training_table(cfg)  # a missing table is named before the workers form a group
    if worker is not None and worker.world_size > 1:
        from cvfl.workers import join_group

        group = join_group(
            worker,
            security,
            job_id=cfg.job.id,
            role=cfg.role,
            timeout=cfg.peer.connect_timeout,
            party_key=party_key(cfg),
        )
    return load_party(cfg, worker=rank, group=group)


def prepare_party(
    cfg: JobConfig, security: ChannelSecurity, rerun: Rerun, worker: WorkerContext | None = None
) -> Party:
    """:func:`load_ready_party`; if that fails, the peer is told why rather than left waiting."""
    from cvfl.train.peers import tell_peer

    try:
        return load_ready_party(cfg, security, rerun, worker)
    except CvflError as exc:
        tell_peer(cfg, security, exc, worker.rank if worker is not None else 0)
        raise


def party_key(cfg: JobConfig) -> bytes | None:
    """The key this party's workers prove at enrolment (derived from its sealing key)."""
    if cfg.sealing is None:
        return None
    from cvfl.sealing import key_provider_from_config
    from cvfl.workers.proof import party_key as derive

    return derive(key_provider_from_config(cfg.sealing).key(), cfg.job.id, cfg.role)


def run_party(
    party: Party,
    security: ChannelSecurity,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train ``party`` to the end; on a stop or an interruption, say which checkpoint is kept."""
    from cvfl.train import run_follower, run_leader

    run = run_leader if party.cfg.role == "leader" else run_follower
    try:
        result = run(party, security, progress, stop)
        if party.group is not None:
            party.group.barrier()  # worker 0 has exported: leave the group together
    except CvflError as exc:
        if exc.code == STOPPED and party.is_root:
            say_kept(party, "stopped on request")
        raise
    finally:
        if party.group is not None:
            party.group.close()
    return result
