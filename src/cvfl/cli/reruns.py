"""The rerun options of ``cvfl train`` and how an interrupted party ends.

``--fresh`` moves this party's previous run aside; ``--resume-from STEP`` continues a checkpoint
of another configuration on purpose (:mod:`cvfl.train.reruns`). SIGTERM stops like Ctrl-C, and
either says which checkpoint is kept and how to resume.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from cvfl.errors import ConfigError, CvflError, mismatch
from cvfl.logs import get_logger

if TYPE_CHECKING:
    from cvfl.train import JobConfig, Party
    from cvfl.workers import WorkerContext

log = get_logger(__name__)

FreshOpt = Annotated[
    bool,
    typer.Option(
        "--fresh",
        help="Start over: move this party's previous run (checkpoints, export, result) to "
        "<workdir>/previous-runs/<time>-<role>/ (nothing is deleted). Give both parties --fresh.",
    ),
]
ResumeFromOpt = Annotated[
    int | None,
    typer.Option(
        "--resume-from",
        min=1,
        help="Continue the checkpoint of STEP on purpose although the job changed since it was "
        "written (the changes are logged); newer checkpoints are moved aside. Give both parties "
        "the same STEP.",
    ),
]


def say_kept(party: Party, stop: KeyboardInterrupt) -> None:
    """Say which checkpoint survives the interruption and how to go on."""
    from cvfl.train.party import checkpoint_store
    from cvfl.train.peers import committed_step
    from cvfl.workers.launch import Terminated

    how = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
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


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """Turn SIGTERM into a clean stop like Ctrl-C, ending with exit code 143 (128 + 15).

    The handler is installed only in the main thread; a launcher's own SIGTERM (it stops its
    workers first) ends the same way.
    """
    from cvfl.workers.launch import Terminated

    def stop(signum: int, frame: object) -> None:
        raise Terminated("received SIGTERM")

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        yield
    except Terminated:
        raise typer.Exit(143) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


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
    from cvfl.train.party import artifacts_for, make_schedule, read_training_table
    from cvfl.train.recovery import CheckpointStore
    from cvfl.train.reruns import resume_on_purpose

    artifacts = artifacts_for(cfg)
    table = read_training_table(cfg, artifacts)
    binding = training_binding(cfg, table)
    store = CheckpointStore(cfg.job.workdir / "checkpoints", cfg.role, artifacts, binding=binding)
    total = make_schedule(cfg, table.rows).total_steps
    resume_on_purpose(store, binding, step, total, cfg.job.workdir)
