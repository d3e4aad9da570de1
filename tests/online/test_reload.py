"""Both parties reload a newer export while serving; scores follow ``cvfl predict``'s."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cvfl.bridge.security import PlaintextSecurity
from cvfl.online import start_party
from cvfl.online.service import FollowerService, LeaderService
from cvfl.train.config import JobConfig
from tests.online.helpers import post, predicted, serve_section
from tests.serve.helpers import export_untrained

TOL = 1e-6


def _keep(cfg: JobConfig, name: str) -> Path:
    """Copy the party's current export folder to ``name``; the copied weights' path."""
    source = cfg.job.workdir / "export"
    shutil.copytree(source, cfg.job.workdir / name)
    return cfg.job.workdir / name / f"{cfg.role}.safetensors.sealed"


def _export(cfg: JobConfig, seed: int, steps: int) -> None:
    """Export freshly initialised weights of another seed (same job, so the export fits)."""
    export_untrained(dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, seed=seed)), steps)


def _scores(port: int, ids: list[str]) -> dict[str, float]:
    status, body = post(port, "/v1/score", {"ids": ids})
    assert status == 200
    return {s["id"]: s["score"] for s in body["scores"] if s["scored"]}


# whole tables cached at load, or the 5 most recent rows: a reload never serves the old outputs
@pytest.mark.parametrize("cache_ids", [100_000, 5])
def test_both_parties_reload_a_newer_export(
    small_job: Callable[..., tuple[JobConfig, JobConfig]], tmp_path: Path, cache_ids: int
) -> None:
    lead, follow = small_job(peer__port_file=str(tmp_path / "leader.port"))
    versions: list[dict[str, float]] = []
    exports: list[tuple[Path, Path]] = []
    for version, (seed, steps) in enumerate(((7, 3), (99, 5))):
        _export(lead, seed, steps)
        _export(follow, seed, steps)
        table = predicted(lead, follow, tmp_path / f"v{version}")
        names, scores = table["example_id"].to_pylist(), table["score"].to_pylist()
        versions.append(dict(zip(names, scores, strict=True)))
        exports.append((_keep(lead, f"v{version}"), _keep(follow, f"v{version}")))
        shutil.rmtree(lead.job.workdir / "export")
        shutil.rmtree(follow.job.workdir / "export")
    ids = sorted(versions[0])[:20]
    assert any(abs(versions[0][i] - versions[1][i]) > 1e-3 for i in ids)
    security = PlaintextSecurity()
    sections = [
        (
            serve_section(lead, export=lead_export, cache_ids=cache_ids),
            serve_section(follow, export=follow_export, cache_ids=cache_ids),
        )
        for lead_export, follow_export in exports
    ]
    leader = start_party(lead, sections[0][0], security)
    follower = start_party(follow, sections[0][1], security)
    assert isinstance(leader, LeaderService) and isinstance(follower, FollowerService)
    try:
        assert leader.wait_for_follower(20)
        for example, score in _scores(leader.http_port, ids).items():
            assert abs(score - versions[0][example]) <= TOL
        leader.reload(sections[1][0])
        follower.reload(sections[1][1])
        assert leader.wait_for_follower(20)
        deadline = time.monotonic() + 20
        while len(seen := _scores(leader.http_port, ids)) < len(ids):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for example, score in seen.items():
            assert abs(score - versions[1][example]) <= TOL
    finally:
        follower.drain()
        leader.drain()
