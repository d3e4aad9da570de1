"""``cvfl serve`` over attested RA-TLS (simulated evidence), as between real parties."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cvfl.online import start_party
from cvfl.online.service import FollowerService, LeaderService
from cvfl.train.config import JobConfig
from tests.online.helpers import exported_pair, grpc_score, serve_section
from tests.ratls.helpers import security, terms


def test_scores_over_ratls_equal_predict(
    small_job: Callable[..., tuple[JobConfig, JobConfig]], tmp_path: Path
) -> None:
    lead, follow = small_job(peer__port_file=str(tmp_path / "leader.port"))
    table = exported_pair(lead, follow, tmp_path)
    ids = table["example_id"].to_pylist()[:10]
    expected = dict(zip(ids, table["score"].to_pylist()[:10], strict=True))
    leader = start_party(
        lead, serve_section(lead), security(job_terms=terms("leader", command="serve"))
    )
    follower_security = security(role="follower", job_terms=terms("follower", command="serve"))
    follower = start_party(follow, serve_section(follow), follower_security)
    assert isinstance(leader, LeaderService) and isinstance(follower, FollowerService)
    try:
        assert leader.wait_for_follower(30)
        answer = grpc_score(leader.grpc_port, ids)
        assert [s.id for s in answer.scores] == ids
        assert all(
            s.scored and abs(s.values["score"] - expected[s.id]) <= 1e-6 for s in answer.scores
        )
    finally:
        follower.drain()
        leader.drain()
