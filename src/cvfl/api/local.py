"""``run_local``: both parties of a job in this process, for experiments and examples.

Each party runs in its own thread and they talk over loopback with the jobs' own channel
security (attested RA-TLS, or plaintext only where the job files say ``security =
"insecure"``). Both parties are loaded one after the other before either thread starts, so
their model halves are built from the seeds exactly as two separate processes build them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cvfl.api.jobs import JobLike, as_job
from cvfl.api.progress import ProgressLike, as_progress
from cvfl.api.reruns import Rerun
from cvfl.api.training import load_ready_party, run_party
from cvfl.errors import ConfigError, CvflError, PeerStoppedError, mismatch
from cvfl.roles import ROLES
from cvfl.train.stop import STOPPED

if TYPE_CHECKING:
    from cvfl.train import JobConfig, TrainResult

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class LocalResult:
    """Both parties' results of :func:`run_local`."""

    leader: TrainResult
    follower: TrainResult


def run_local(
    leader_job: JobLike,
    follower_job: JobLike,
    *,
    progress: ProgressLike = None,
    stop: threading.Event | None = None,
    fresh: bool = False,
    resume_from: int | None = None,
) -> LocalResult:
    """Train both parties of a job on this machine and return both results.

    Args:
        leader_job: The leader's job (loaded or a path); it must listen on a loopback address.
        follower_job: The follower's job; it must dial a loopback address.
        progress: The leader's progress (a Progress or a callable ``(step, total, loss)``).
        stop: Set it to stop both parties between steps (see :func:`cvfl.api.train`).
        fresh: Move both parties' previous runs aside first.
        resume_from: Continue this step's checkpoint on purpose (both parties).

    Raises:
        CvflError: ``train.stopped`` when ``stop`` ended the run; otherwise the first party's
            own error (the other party's report of its stop is chained as context).
    """
    cfgs = {"leader": as_job(leader_job), "follower": as_job(follower_job)}
    _check_pair(cfgs)
    from cvfl.train.channel import security_for

    rerun = Rerun(fresh, resume_from)
    security = {role: security_for(cfg, "train") for role, cfg in cfgs.items()}
    parties = {role: load_ready_party(cfg, security[role], rerun) for role, cfg in cfgs.items()}
    shown = {"leader": as_progress(progress), "follower": as_progress(None)}
    results: dict[str, TrainResult] = {}
    errors: dict[str, BaseException] = {}

    def work(role: str) -> None:
        from cvfl.train.party import set_threads

        # OpenMP's thread count is per thread: set it where this party's loop runs, as its
        # own process would (the same count gives bit-for-bit the same arithmetic).
        set_threads(cfgs[role].train.threads)
        try:
            results[role] = run_party(parties[role], security[role], shown[role], stop)
        except BaseException as exc:  # re-raised in the caller's thread below
            errors[role] = exc

    threads = [
        threading.Thread(target=work, args=(role,), name=f"cvfl-{role}", daemon=True)
        for role in ROLES
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise _first(errors)
    for role, cfg in cfgs.items():
        results[role].write(cfg.job.workdir)
    return LocalResult(results["leader"], results["follower"])


def _check_pair(cfgs: dict[str, JobConfig]) -> None:
    """Refuse jobs of the wrong roles, of two jobs, with several workers or off loopback."""
    for role, cfg in cfgs.items():
        if cfg.role != role:
            raise ConfigError(
                mismatch(f"{role}_job: [job] role", role, cfg.role), code="config.role"
            )
        if cfg.train.workers != 1:
            raise ConfigError(
                mismatch(f"{role}_job: [train] workers with run_local", 1, cfg.train.workers),
                code="config.train",
            )
    leader, follower = cfgs["leader"], cfgs["follower"]
    if leader.job.id != follower.job.id:
        raise ConfigError(
            mismatch("follower_job: [job] id", leader.job.id, follower.job.id), code="config.job"
        )
    for role, address in (("leader", leader.peer.listen), ("follower", follower.peer.connect)):
        host = address.rpartition(":")[0]
        if host not in LOOPBACK:
            raise ConfigError(
                mismatch(f"{role}_job: [peer] host with run_local", "a loopback address", host),
                code="config.peer",
            )


def _first(errors: dict[str, BaseException]) -> BaseException:
    """The error to raise: a party's own stop, else the first party's own error."""
    ordered = [errors[role] for role in ROLES if role in errors]
    own = [e for e in ordered if not isinstance(e, PeerStoppedError)]
    stopped = [e for e in own if isinstance(e, CvflError) and e.code == STOPPED]
    chosen = (stopped or own or ordered)[0]
    others = [e for e in ordered if e is not chosen]
    if others and chosen.__context__ is None:
        chosen.__context__ = others[0]
    return chosen
