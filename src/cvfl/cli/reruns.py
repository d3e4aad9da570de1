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
from typing import TYPE_CHECKING, Annotated

import typer

from cvfl.api.reruns import Rerun
from cvfl.logs import get_logger

if TYPE_CHECKING:
    from cvfl.train import Party

log = get_logger(__name__)

__all__ = ["FreshOpt", "Rerun", "ResumeFromOpt", "say_kept", "sigterm_stops"]

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
    from cvfl.api.reruns import say_kept as kept
    from cvfl.workers.launch import Terminated

    kept(party, "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted")


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
