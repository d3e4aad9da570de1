"""Small demo-format jobs and a process runner for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from cvfl.cli.demo import DemoSize, job_toml, prepare
from cvfl.cli.parties import free_port

SIZE = DemoSize(rows=1200, slots=8, epochs=2)


def write_small_job(
    folder: Path,
    *,
    peer_extra: str = "",
    train_extra: str = "",
    epochs: int = 2,
    workers: int = 1,
    align: bool = False,
) -> None:
    """Data, keys and two job files in ``folder``: a small model, the leader on port 0.

    With ``align`` the tables are shuffled and overlap by 80 % (``[psi]`` aligns them, on a
    free port: alignment has no port file).
    """
    from cvfl.attestation import measure_code

    size = DemoSize(rows=SIZE.rows, slots=SIZE.slots, epochs=epochs, workers=workers)
    prepare(folder, size, align=align)
    mr_enclave = measure_code().hex()
    port = free_port() if align else 0
    for role in ("leader", "follower"):
        text = job_toml(role, size, mr_enclave, port, align=align)
        text = text.replace("embed_dim = 16", "embed_dim = 4").replace("[256, 64]", "[32, 16]")
        text = text.replace("lr = 0.001", "lr = 0.01")
        text = text.replace("[train]", f"[train]\nthreads = 1\n{train_extra}")
        text = text.replace("security = ", f'port_file = "leader.port"\n{peer_extra}\nsecurity = ')
        (folder / f"{role}.toml").write_text(text)


class Party:
    """A ``cvfl`` process whose merged output is collected line by line."""

    def __init__(self, folder: Path, *args: str) -> None:
        env = dict(os.environ, COLUMNS="200", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cvfl", *args],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        """Wait until a line containing ``text`` has been printed."""
        with self._seen:
            return self._seen.wait_for(lambda: any(text in line for line in self.lines), timeout)

    def finish(self, timeout: float = 240) -> int:
        """Wait for the exit code."""
        return self.proc.wait(timeout)

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "".join(self.lines)
