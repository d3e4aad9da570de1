"""``cvfl report`` compares split, leader-only and centralized models for every task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvfl.report.quality import build_report
from cvfl.report.render import render_json, render_text
from cvfl.train import TrainResult
from cvfl.train.config import load_job
from tests.train.helpers import run_pair
from tests.train.task_tables import write_task_jobs


@pytest.mark.parametrize(
    ("task", "names"),
    [
        ("multiclass", ["macro AUC", "accuracy", "macro F1", "log-loss"]),
        ("regression", ["RMSE", "MAE", "R²"]),
    ],
)
def test_report_per_task(tmp_path: Path, task: str, names: list[str]) -> None:
    leader_toml, follower_toml = write_task_jobs(tmp_path, task, train__lr=0.05)
    leader_cfg, follower_cfg = load_job(leader_toml), load_job(follower_toml)
    lead, follow = run_pair(leader_cfg, follower_cfg)
    assert isinstance(lead, TrainResult), lead
    assert isinstance(follow, TrainResult), follow
    lead.write(leader_cfg.job.workdir)

    report = build_report(leader_toml, follower_toml)
    assert report.centralized is not None
    assert {m.metrics.task for m in report.models} == {task}
    # Split training is exact: the centralized model's metrics are the split model's.
    for name, value in report.centralized.metrics.as_dict().items():
        assert report.split.metrics.get(name) == pytest.approx(value, abs=1e-5), name
    assert report.leader_only.metrics.as_dict().keys() == report.split.metrics.as_dict().keys()
    text = render_text(report)
    header = text.splitlines()[2]
    assert [h for h in names if h in header] == names
    assert "leader only" in text and "centralized" in text
    data = json.loads(render_json(report))
    assert data["task"] == task
    assert set(data["models"]) == {"split", "leader only", "centralized"}
    assert data["lower_is_better"] is (task == "regression")
    # The leakage audit scores 0/1 labels: a non-binary report shows no leakage block.
    assert "label leakage" not in text
