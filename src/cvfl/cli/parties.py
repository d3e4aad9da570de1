"""Running both parties of a job on this machine, as separate OS processes (demos, examples)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from cvfl.errors import CvflError
from cvfl.roles import ROLES
from cvfl.workers.launch import free_ports


def free_port() -> int:
    """A loopback port that was free a moment ago (a leader on this machine listens on it)."""
    return free_ports(1)[0]


def _pump(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stderr.write(f"{prefix} {line}")
        sys.stderr.flush()


def _spawn(
    command: str, role: str, folder: Path, options: list[str]
) -> tuple[subprocess.Popen[str], threading.Thread]:
    # The two parties take turns on the CPU: OpenMP threads spinning while they wait for the
    # next parallel region would steal the peer's cores.
    env = dict(os.environ, COLUMNS="120", PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE")
    config = str(folder / f"{role}.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvfl", command, "--config", config, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    thread = threading.Thread(target=_pump, args=(proc.stdout, f"[{role:>8}]"), daemon=True)
    thread.start()
    return proc, thread


def run_parties(
    command: str,
    folder: Path,
    options: list[str] | tuple[str, ...] = (),
    per_role: Mapping[str, list[str]] | None = None,
) -> None:
    """Run ``cvfl COMMAND --config FOLDER/<role>.toml [options]`` for both parties at once.

    Each party's output is shown on standard error, prefixed by its role. ``per_role`` adds
    options for one role only.

    Raises:
        CvflError: either party exited with a non-zero code (both are waited for first).
    """
    procs = {
        role: _spawn(command, role, folder, [*options, *(per_role or {}).get(role, ())])
        for role in ROLES
    }
    failed = []
    for role, (proc, thread) in procs.items():
        code = proc.wait()
        thread.join(5)
        if code != 0:
            failed.append(f"{role} exited with code {code}")
    if failed:
        raise CvflError(
            f"cvfl {command} failed: " + "; ".join(failed) + " (see the output above)",
            code="demo.failed",
        )
