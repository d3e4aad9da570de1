"""Where this process sits in its party's worker group, read from torchrun/Kubernetes variables.

No PyTorch here: the launcher and the CLI read the context before anything heavy is imported.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cvfl.errors import ConfigError, mismatch

MAX_PORT = 65535
MAX_WORLD_SIZE = 4096
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


@dataclass(frozen=True)
class WorkerContext:
    """One worker's place in the group: its rank, the group's size and rank 0's addresses.

    Attributes:
        rank: This worker's rank, ``0 <= rank < world_size``; rank 0 is the group's root.
        world_size: How many workers the party runs.
        master_addr: Rank 0's host (name or address), for enrolment and gloo's rendezvous.
        master_port: gloo's rendezvous (TCP store) port on ``master_addr``.
        enrol_port: The attested enrolment service's port on ``master_addr``.
    """

    rank: int
    world_size: int
    master_addr: str
    master_port: int
    enrol_port: int

    def __post_init__(self) -> None:
        _check_range("WORLD_SIZE", self.world_size, 1, MAX_WORLD_SIZE)
        _check_range("RANK", self.rank, 0, self.world_size - 1)
        _check_range("MASTER_PORT", self.master_port, 1, MAX_PORT)
        _check_range("CVFL_ENROL_PORT", self.enrol_port, 1, MAX_PORT)
        if not self.master_addr or any(c.isspace() for c in self.master_addr):
            raise ConfigError(
                mismatch("MASTER_ADDR", "a host name or address", repr(self.master_addr)),
                code="workers.env",
            )
        if self.world_size > 1 and self.enrol_port == self.master_port:
            raise ConfigError(
                mismatch(
                    "CVFL_ENROL_PORT",
                    f"a port other than MASTER_PORT {self.master_port}",
                    self.enrol_port,
                ),
                code="workers.env",
            )

    @property
    def is_root(self) -> bool:
        """Whether this worker is rank 0 (it serves enrolment and hosts the rendezvous)."""
        return self.rank == 0

    @property
    def loopback(self) -> bool:
        """Whether ``master_addr`` names this machine's loopback interface."""
        return is_loopback(self.master_addr)

    @property
    def enrol_bind_address(self) -> str:
        """Where rank 0 listens for enrolment: loopback only when the group is on loopback."""
        return f"{'127.0.0.1' if self.loopback else '0.0.0.0'}:{self.enrol_port}"

    @property
    def enrol_target(self) -> str:
        """Where the other ranks dial rank 0's enrolment service."""
        return f"{host_for_target(self.master_addr)}:{self.enrol_port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_for_target(host: str) -> str:
    """``host`` as it goes before ``:port`` in a gRPC target (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def context_from_env(environ: Mapping[str, str] | None = None) -> WorkerContext | None:
    """Read the worker context from torchrun/Kubernetes variables.

    Reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` and ``CVFL_ENROL_PORT``
    (default ``MASTER_PORT + 1``).

    Args:
        environ: The variables to read; ``os.environ`` when None.

    Returns:
        None when neither ``RANK`` nor ``WORLD_SIZE`` is set (a single, ungrouped worker).

    Raises:
        ConfigError: a variable is missing or malformed (the message names the variable with the
            expected and the seen value; code ``workers.env``).
    """
    env = os.environ if environ is None else environ
    if "RANK" not in env and "WORLD_SIZE" not in env:
        return None
    world_size = _int(env, "WORLD_SIZE", f"an integer 1..{MAX_WORLD_SIZE}")
    _check_range("WORLD_SIZE", world_size, 1, MAX_WORLD_SIZE)
    rank = _int(env, "RANK", f"an integer 0..{world_size - 1}")
    _check_range("RANK", rank, 0, world_size - 1)
    if "MASTER_ADDR" not in env:
        raise ConfigError(
            mismatch("MASTER_ADDR", "a host name or address", "unset"), code="workers.env"
        )
    master_addr = env["MASTER_ADDR"].strip()
    master_port = _int(env, "MASTER_PORT", f"a port 1..{MAX_PORT}")
    _check_range("MASTER_PORT", master_port, 1, MAX_PORT)
    if env.get("CVFL_ENROL_PORT", "").strip():
        enrol_port = _int(env, "CVFL_ENROL_PORT", f"a port 1..{MAX_PORT}")
    else:
        enrol_port = master_port + 1
        if enrol_port > MAX_PORT:
            raise ConfigError(
                mismatch(
                    "CVFL_ENROL_PORT", f"set explicitly when MASTER_PORT is {MAX_PORT}", "unset"
                ),
                code="workers.env",
            )
    return WorkerContext(rank, world_size, master_addr, master_port, enrol_port)


def _int(env: Mapping[str, str], name: str, expected: str) -> int:
    raw = env.get(name)
    if raw is None:
        raise ConfigError(mismatch(name, expected, "unset"), code="workers.env")
    text = raw.strip()
    if not text.isascii() or not text.isdigit():
        raise ConfigError(mismatch(name, expected, repr(raw)), code="workers.env")
    return int(text)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(mismatch(name, f"{low}..{high}", value), code="workers.env")
