"""``cvfl run``: both parties align, then train, from one command each (as in the enclave)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvfl.cli.demo import DemoSize, prepare
from tests.e2e.jobs import SIZE, Party

pytestmark = pytest.mark.e2e


def _small_aligning_jobs(folder: Path) -> None:
    """The demo's job files (shuffled tables, 80% overlap, [psi]) with a small model."""
    prepare(folder, DemoSize(rows=SIZE.rows, slots=SIZE.slots, epochs=1), align=True)
    for role in ("leader", "follower"):
        path = folder / f"{role}.toml"
        text = path.read_text()
        assert 'steps = ["align", "train"]' in text
        text = text.replace("embed_dim = 16", "embed_dim = 4").replace("[256, 64]", "[32, 16]")
        path.write_text(text.replace("[train]", "[train]\nthreads = 1"))


def test_run_aligns_then_trains_both_parties(tmp_path: Path) -> None:
    _small_aligning_jobs(tmp_path)
    leader = Party(tmp_path, "run", "--config", "leader.toml")
    follower = Party(tmp_path, "run", "--config", "follower.toml")
    assert follower.finish(timeout=240) == 0, follower.output
    assert leader.finish(timeout=240) == 0, leader.output
    for party, role in ((leader, "leader"), (follower, "follower")):
        out = party.output
        assert out.index("step 1 of 2: cvfl align") < out.index("step 2 of 2: cvfl train"), out
        assert "all 2 steps finished: align, train" in out
        assert (tmp_path / "aligned" / f"{role}.parquet.sealed").is_file()
    reports = [
        json.loads((tmp_path / "aligned" / f"{role}.parquet.sealed.report.json").read_text())
        for role in ("leader", "follower")
    ]
    assert reports[0]["intersection"] == reports[1]["intersection"] > 0
    assert reports[0]["intersection"] < SIZE.rows  # the tables overlapped by 80%, shuffled
    result = json.loads((tmp_path / "leader" / "leader-result.json").read_text())
    assert result["steps"] > 0 and 0.0 <= result["metrics"]["auc"] <= 1.0  # 1 short epoch
    assert (tmp_path / "follower" / "export" / "follower.safetensors.sealed").is_file()
