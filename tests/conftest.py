"""Shared fixtures: small synthetic jobs for both parties."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from cvfl.data import SynthSpec, synthesize, write_arrow
from cvfl.sealing import KeyProvider, key_provider_from_config
from cvfl.train.config import JobConfig, job_from_mapping

warnings.filterwarnings("ignore", category=DeprecationWarning)

# Hypothesis's per-example deadline and its "too slow" health check time the machine, not the
# code: on a loaded CI machine they fail property tests that are right. Tests that are about
# time measure it themselves.
settings.register_profile("cvfl", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cvfl")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


def make_tables(folder: Path, rows: int = 600, slots: int = 8, seed: int = 3) -> tuple[Path, Path]:
    tables = synthesize(SynthSpec(rows=rows, slots=slots, informative=4, seed=seed))
    leader, follower = folder / "leader.parquet", folder / "follower.parquet"
    write_arrow(tables.leader, leader)
    write_arrow(tables.follower, follower)
    return leader, follower


def _key(folder: Path, role: str) -> Path:
    from cvfl.sealing import new_key_file

    path = folder / "keys" / f"{role}.key"
    if not path.exists():
        new_key_file(path)
    return path


def keys_of(cfg: JobConfig) -> KeyProvider:
    """The sealing key provider of a job."""
    assert cfg.sealing is not None
    return key_provider_from_config(cfg.sealing)


def job_tables(
    folder: Path, data: Path, role: str, *, slots: int = 8, **overrides: Any
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "job": {"id": "test-job", "role": role, "seed": 7, "workdir": str(folder / role)},
        "data": {"path": str(data)},
        "model": {
            "kind": "widedeep",
            "slots": slots,
            "embed_dim": 4,
            "cut_width": 8,
            "leader_hidden": [16, 8],
        },
        "train": {
            "optimizer": "adam",
            "lr": 0.01,
            "batch_size": 32,
            "epochs": 2,
            "threads": 1,
            "eval_batch_size": 64,
            "device": "cpu",  # exact comparisons run on the host, GPU or not
        },
        "sealing": {"provider": "file", "key_file": str(_key(folder, role))},
        "peer": {
            "listen": "127.0.0.1:0",
            "connect": "127.0.0.1:0",
            "security": "insecure",
            "connect_timeout": 20.0,
            "step_timeout": 20.0,
        },
    }
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    return raw


@pytest.fixture
def small_job(tmp_path: Path) -> Callable[..., tuple[JobConfig, JobConfig]]:
    """Build a leader and a follower JobConfig over fresh synthetic tables."""
    return job_pair_builder(tmp_path, *make_tables(tmp_path))


def job_pair_builder(
    folder: Path, leader_data: Path, follower_data: Path
) -> Callable[..., tuple[JobConfig, JobConfig]]:
    """Build both parties' JobConfig over these tables, with ``section__key`` overrides."""

    def build(**overrides: Any) -> tuple[JobConfig, JobConfig]:
        src = folder / "job.toml"
        lead = job_from_mapping(job_tables(folder, leader_data, "leader", **overrides), src)
        follow = job_from_mapping(job_tables(folder, follower_data, "follower", **overrides), src)
        return lead, follow

    return build
