"""A small numeric job built entirely in Python (tables in memory, halves from Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cvfl import api
from cvfl.cli.parties import free_port
from cvfl.train.config import JobConfig

from .models import FollowerNet, leader_net

ROWS = 400


def tables(seed: int = 11) -> tuple[pa.Table, pa.Table]:
    """The leader's and the follower's tables; the label needs both parties' features."""
    rng = np.random.default_rng(seed)
    lead, follow = rng.normal(size=(ROWS, 3)), rng.normal(size=(ROWS, 3))
    label = (lead[:, 0] + follow[:, 0] + 0.3 * rng.normal(size=ROWS) > 0).astype(np.int64)
    ids = pa.array([f"u{i}" for i in range(ROWS)])
    leader = {f"l{j}": lead[:, j].astype(np.float32) for j in range(3)}
    follower = {f"f{j}": follow[:, j].astype(np.float32) for j in range(3)}
    return (
        pa.table({"example_id": ids, **leader, "label": label}),
        pa.table({"example_id": ids, **follower}),
    )


def mapping(role: str, data: Any, workdir: str, port: int) -> dict[str, Any]:
    """One party's job, shaped like its job file."""
    return {
        "job": {
            "id": "api-job",
            "role": role,
            "seed": 5,
            "workdir": workdir,
            "plaintext_outputs": True,  # a test: no [sealing]
        },
        "data": {"path": data, "kind": "numeric"},
        "model": {
            "kind": "custom",
            "cut_width": 4,
            "follower_factory": FollowerNet,
            "leader_factory": leader_net,
        },
        "train": {
            "lr": 0.01,
            "batch_size": 32,
            "epochs": 2,
            "threads": 1,
            "checkpoint_every": 5,
            "checkpoint_every_s": 0,
        },
        "peer": {
            "listen": f"127.0.0.1:{port}",
            "connect": f"127.0.0.1:{port}",
            "security": "insecure",
            "connect_timeout": 20.0,
            "step_timeout": 20.0,
        },
    }


def pair(folder: Path, workdir: str, data: tuple[Any, Any] | None = None) -> tuple[JobConfig, ...]:
    """Both parties' jobs, their outputs in ``folder/<workdir>-<role>``, on a fresh port."""
    port = free_port()
    leader, follower = data or tables()
    jobs = []
    for role, table in (("leader", leader), ("follower", follower)):
        jobs.append(api.build_job(mapping(role, table, f"{workdir}-{role}", port), folder))
    return tuple(jobs)
