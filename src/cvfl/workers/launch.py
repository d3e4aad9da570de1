"""Start one party's N workers on this machine and watch them (``cvfl train`` with workers = N).

Each worker is ``python -m cvfl train --config FILE`` with the torch.distributed variables set
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) plus CVFL_ENROL_PORT, exactly what
torchrun or a Kubernetes StatefulSet would give it. If one worker fails or is killed, the others
are stopped (SIGTERM, then SIGKILL after a grace period) and the launch fails with that worker's
error class, so the party stops as a whole and a restart resumes from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cvfl.errors import EXIT_CODES, CvflError, PeerUnavailableError
from cvfl.logs import get_logger

log = get_logger(__name__)

GRACE_SECONDS = 10.0
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Exit:
    """How one worker process ended."""

    rank: int
    returncode: int

    def describe(self) -> str:
        """E.g. ``exited with code 4`` or ``was killed by SIGKILL``."""
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"was killed by {name}"
        return f"exited with code {self.returncode}"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the OS reports free on ``host`` right now (for a launch on this machine)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_env(rank: int, workers: int, master_port: int, enrol_port: int) -> dict[str, str]:
    """The environment of worker ``rank`` of a launch on this machine."""
    return {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(workers),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(master_port),
        "CVFL_ENROL_PORT": str(enrol_port),
    }


def launch_local(config: Path, workers: int, *, options: Sequence[str] = ()) -> None:
    """Run ``workers`` worker processes of one party's job and wait for all of them.

    Args:
        config: The party's job file.
        workers: How many workers (the job's ``[train] workers``).
        options: Global ``cvfl`` options to pass on (e.g. ``--verbose``).

    Raises:
        CvflError: a worker failed (the class its exit code stands for); the message names it.
    """
    master_port, enrol_port = free_ports(2)
    command = [sys.executable, "-m", "cvfl", *options, "train", "--config", str(config)]
    log.info("starting %d workers (group on 127.0.0.1:%d)", workers, master_port)
    procs = [
        subprocess.Popen(command, env=worker_env(rank, workers, master_port, enrol_port))
        for rank in range(workers)
    ]
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main else None
    try:
        failed = _watch(procs)
    except BaseException:
        _stop(procs)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    if failed is not None:
        raise _failure(failed, workers)
    log.info("all %d workers finished", workers)


class Terminated(KeyboardInterrupt):
    """The launcher itself was asked to stop (SIGTERM): its workers are stopped first."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated(f"received {signal.Signals(signum).name}")


def _watch(procs: list[subprocess.Popen[bytes]]) -> Exit | None:
    """Wait until all workers succeeded (None) or one failed (stopping the others)."""
    while True:
        codes = [p.poll() for p in procs]
        for rank, code in enumerate(codes):
            if code is not None and code != 0:
                _stop(procs)
                return Exit(rank, code)
        if all(code == 0 for code in codes):
            return None
        time.sleep(_POLL_SECONDS)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every running worker, then SIGKILL those still alive after the grace period."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()


def _failure(exit: Exit, workers: int) -> CvflError:
    """The error a failed launch raises: the failed worker's own class, or peer-unavailable."""
    message = (
        f"worker {exit.rank} of {workers} {exit.describe()}; the other workers were stopped. "
        "Fix the cause named above, then run the same command again: the job resumes from the "
        "last checkpoint both parties committed"
    )
    # Exit code 1 is both the base class's and an unexpected crash's: read as peer-unavailable.
    by_code = {code: cls for cls, code in EXIT_CODES.items() if code != EXIT_CODES[CvflError]}
    cls = by_code.get(exit.returncode, PeerUnavailableError)
    return cls(message, code="workers.failed")
