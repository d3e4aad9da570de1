"""What a rerun asks of a party's previous run, and what an interrupted party says it kept.

``fresh`` moves this party's previous run aside; ``resume_from`` continues a checkpoint of
another configuration on purpose (:mod:`cvfl.train.reruns`). The CLI's ``--fresh`` and
``--resume-from`` and the Python API's ``fresh=`` and ``resume_from=`` are the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cvfl.errors import ConfigError, CvflError, mismatch
from cvfl.logs import get_logger

if TYPE_CHECKING:
    from cvfl.train import JobConfig, Party
    from cvfl.workers import WorkerContext

log = get_logger(__name__)


def say_kept(party: Party, how: str) -> None:
    """Log which checkpoint survives the interruption (``how``: its cause) and how to go on."""
    from cvfl.train.party import checkpoint_store
    from cvfl.train.peers import committed_step

    store = checkpoint_store(party)
    try:
        newest = max((s.step for s in store.inventory()), default=0)
    except (CvflError, OSError):  # said on the way out: the records' own error comes on a rerun
        newest = 0
    if not newest:
        log.warning("%s: no checkpoint kept yet; the same command starts again from step 0", how)
        return
    both = committed_step(store)
    also = "" if both == newest else f" (the newest both parties hold for sure: step {both})"
    log.warning(
        "%s: checkpoint of step %s kept%s; run the same command to resume", how, newest, also
    )


@dataclass(frozen=True)
class Rerun:
    """What ``--fresh`` / ``--resume-from`` ask of this party's previous run."""

    fresh: bool = False
    resume_from: int | None = None

    def check(self, worker: WorkerContext | None) -> None:
        """Refuse both options at once, or either in one worker of several."""
        if self.fresh and self.resume_from is not None:
            raise ConfigError(
                mismatch("--fresh and --resume-from", "one of them", "both"), code="config.option"
            )
        if (self.fresh or self.resume_from) and worker is not None and worker.world_size > 1:
            raise ConfigError(
                mismatch(
                    "--fresh / --resume-from with RANK/WORLD_SIZE set (one worker of several)",
                    "the option given once, to `cvfl train` that launches the workers",
                    f"worker {worker.rank} of {worker.world_size}",
                ),
                code="config.option",
            )

    def prepare(self, cfg: JobConfig) -> None:
        """Move the previous run aside, or rebind the checkpoint to resume on purpose."""
        from cvfl.train.reruns import start_fresh

        if self.fresh:
            start_fresh(cfg)
        elif self.resume_from is not None:
            _resume_on_purpose(cfg, self.resume_from)


def _resume_on_purpose(cfg: JobConfig, step: int) -> None:
    from cvfl.train.binding import training_binding
    from cvfl.train.party import artifacts_for
    from cvfl.train.recovery import CheckpointStore
    from cvfl.train.reruns import resume_on_purpose
    from cvfl.train.training_tables import schedule_for, training_table

    artifacts = artifacts_for(cfg)
    table = training_table(cfg, artifacts)
    binding = training_binding(cfg, table)
    store = CheckpointStore(cfg.job.workdir / "checkpoints", cfg.role, artifacts, binding=binding)
    total = schedule_for(cfg, table).total_steps
    resume_on_purpose(store, binding, step, total, cfg.job.workdir)
