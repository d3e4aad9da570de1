"""align then run_local from Python: in-memory tables with different rows, aligned privately."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from cvfl import api
from cvfl.cli.parties import free_port

from .jobs import mapping, tables


def test_align_then_train_from_python(tmp_path: Path) -> None:
    leader_table, follower_table = tables()
    rng = np.random.default_rng(0)
    keep = rng.permutation(follower_table.num_rows)[:300]  # the follower holds 300 of the rows
    follower_table = follower_table.take(keep)
    port = free_port()
    jobs = []
    for role, table in (("leader", leader_table), ("follower", follower_table)):
        raw = mapping(role, table, f"aligned-{role}", port)
        raw["psi"] = {
            "output": f"aligned/{role}.parquet",
            "plaintext_output": True,
            "connect_timeout_s": 20,
            "timeout_s": 30,
        }
        jobs.append(api.build_job(raw, tmp_path))
    reports: dict[str, Any] = {}

    def align(job: Any) -> None:
        try:
            reports[job.role] = api.align(job)
        except BaseException as exc:
            reports[job.role] = exc

    threads = [threading.Thread(target=align, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [reports[r].intersection for r in ("leader", "follower")] == [300, 300]
    assert jobs[0].training_table == tmp_path / "aligned" / "leader.parquet"

    result = api.run_local(*jobs)
    assert result.leader.steps == 16  # 240 training rows of 300, batches of 32, 2 epochs
    assert result.leader.metrics is not None and result.leader.metrics.rows == 60
