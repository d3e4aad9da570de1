"""CSV input tables, aligned to ``aligned/<role>.parquet.sealed``: the name decides the format.

Alignment writes the aligned table as Parquet (as its name says) although the inputs are CSV,
and training then reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cvfl.psi import read_aligned
from cvfl.sealing import FileKeyProvider
from tests.e2e.jobs import Party
from tests.e2e.test_run import _small_aligning_jobs

pytestmark = pytest.mark.e2e


def _to_csv(folder: Path) -> None:
    for role in ("leader", "follower"):
        table = pq.read_table(folder / "data" / f"{role}.parquet")
        pacsv.write_csv(table, folder / "data" / f"{role}.csv")
        (folder / "data" / f"{role}.parquet").unlink()
        job = folder / f"{role}.toml"
        text = job.read_text()
        assert f'path = "data/{role}.parquet"' in text
        job.write_text(text.replace(f'path = "data/{role}.parquet"', f'path = "data/{role}.csv"'))


def test_csv_tables_align_to_parquet_and_train(tmp_path: Path) -> None:
    _small_aligning_jobs(tmp_path)
    _to_csv(tmp_path)
    leader = Party(tmp_path, "run", "--config", "leader.toml")
    follower = Party(tmp_path, "run", "--config", "follower.toml")
    assert follower.finish(timeout=240) == 0, follower.output
    assert leader.finish(timeout=240) == 0, leader.output
    aligned = tmp_path / "aligned" / "leader.parquet.sealed"
    keys = FileKeyProvider(tmp_path / "keys" / "leader.key")
    table = read_aligned(aligned, keys, "parquet")  # Parquet bytes inside the sealed file
    assert table.num_rows > 0
    result = json.loads((tmp_path / "leader" / "leader-result.json").read_text())
    assert result["steps"] > 0 and 0.0 <= result["metrics"]["auc"] <= 1.0
