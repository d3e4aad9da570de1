"""Small jobs for the privacy tests: the shared synthetic job, and one with rare positives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cvfl.data import SynthSpec, synthesize, write_arrow
from cvfl.train.config import JobConfig
from tests.conftest import job_pair_builder


def rare_positive_tables(folder: Path, rows: int = 1200, keep: float = 0.12) -> tuple[Path, Path]:
    """Synthetic tables with most positive rows dropped (about 1 row in 8 is positive).

    The norm attack needs imbalanced classes: the rarer class has the larger gradients.
    """
    tables = synthesize(SynthSpec(rows=rows, slots=8, informative=4, seed=5))
    labels = tables.leader.column("label").to_numpy()
    rng = np.random.default_rng(0)
    kept = np.flatnonzero((labels == 0) | (rng.random(len(labels)) < keep))
    leader, follower = folder / "rare-leader.parquet", folder / "rare-follower.parquet"
    write_arrow(tables.leader.take(kept), leader)
    write_arrow(tables.follower.take(kept), follower)
    return leader, follower


@pytest.fixture
def rare_job(tmp_path: Path) -> Callable[..., tuple[JobConfig, JobConfig]]:
    """Like ``small_job``, over tables whose positives are rare."""
    return job_pair_builder(tmp_path, *rare_positive_tables(tmp_path))
