"""A job built in Python, trained with run_local, stopped midway, resumed exactly, then scored.

The stopped and resumed run takes its tables as pandas DataFrames (a test dependency; cvfl itself
converts with pyarrow) and must end exactly where the run on pyarrow tables ends.
"""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvfl import api
from cvfl.errors import CvflError
from cvfl.serve import SCORE_COLUMN, read_scores
from cvfl.train.config import JobConfig
from cvfl.train.stop import STOPPED

from .jobs import ROWS, pair, tables


def test_build_run_stop_resume_and_score(tmp_path: Path) -> None:
    whole = api.run_local(*pair(tmp_path, "whole"))
    assert whole.leader.steps == whole.follower.steps == 20
    assert whole.leader.metrics is not None and whole.leader.metrics.auc > 0.8
    assert (tmp_path / "whole-leader" / "leader-result.json").is_file()

    # The same job again, its tables given as pandas DataFrames, stopped midway and resumed.
    pd = pytest.importorskip("pandas")
    frames = tuple(pd.DataFrame(table.to_pydict()) for table in tables())
    leader, follower = pair(tmp_path, "cut", frames)
    stop, seen = threading.Event(), []

    def progress(step: int, total: int, loss: float | None) -> None:
        seen.append((step, total))
        if step == 7:
            stop.set()

    with pytest.raises(CvflError) as info:
        api.run_local(leader, follower, progress=progress, stop=stop)
    assert info.value.code == STOPPED
    assert seen[0] == (1, 20) and seen[-1][0] < 20
    for cfg in (leader, follower):  # step 5's checkpoint is kept, nothing after it committed
        kept = sorted(p.name for p in (cfg.job.workdir / "checkpoints").glob("*-step-*.json"))
        assert f"{cfg.role}-step-000000005.json" in kept
        assert not (cfg.job.workdir / "export").exists()

    steps: list[int] = []
    resumed = api.run_local(leader, follower, progress=lambda s, t, loss: steps.append(s))
    assert steps[0] == 6  # resumed after step 5
    assert resumed.leader.fingerprint == whole.leader.fingerprint
    assert resumed.follower.fingerprint == whole.follower.fingerprint
    assert resumed.leader.metrics == whole.leader.metrics

    # Score the leader's and the follower's in-memory tables with both halves, in two threads.
    lead_table, follow_table = tables()
    out: dict[str, object] = {}

    def score(job: JobConfig, table: pa.Table, **options: Any) -> None:
        try:
            out[job.role] = api.predict(job, table, **options).rows
        except BaseException as exc:
            out[job.role] = exc

    threads = [
        threading.Thread(
            target=score,
            args=(leader, lead_table),
            kwargs={"output": tmp_path / "scores.parquet", "plaintext_scores": True},
        ),
        threading.Thread(target=score, args=(follower, follow_table)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert out == {"leader": ROWS, "follower": ROWS}
    scores = read_scores(tmp_path / "scores.parquet")
    assert scores.num_rows == ROWS and scores.column(SCORE_COLUMN).null_count == 0

    report = api.report(leader, follower, out=tmp_path / "report")
    assert resumed.leader.metrics is not None
    assert report.quality.split.metrics.auc == resumed.leader.metrics.auc
    assert report.quality.centralized is not None
    assert report.files.text.is_file() and report.files.png.is_file()


def test_in_memory_tables_are_private_files(tmp_path: Path) -> None:
    leader, _ = pair(tmp_path, "private")
    path = leader.data.path
    assert path.parent == leader.job.workdir / "tables"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert leader.model.follower_factory == "tests.api.models:FollowerNet"
    assert leader.model.leader_factory == "tests.api.models:leader_net"


def test_dataframes_are_accepted(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    lead, follow = tables()
    leader, _ = pair(tmp_path, "frames", (pd.DataFrame(lead.to_pydict()), follow))
    assert pq.read_table(leader.data.path).column_names == lead.column_names
