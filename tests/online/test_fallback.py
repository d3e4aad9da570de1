"""[serve] fallback = "leader_only": the leader-only model scores what the split one cannot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from cvfl import api
from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import ConfigError, ModelError
from cvfl.online import start_party
from cvfl.online.party import load_fallback
from cvfl.online.service import LeaderService
from cvfl.serve.prepare import load_own_half
from cvfl.serve.scores import scores_table
from cvfl.train.config import JobConfig
from cvfl.train.fallback import fallback_export
from tests.conftest import keys_of
from tests.online.helpers import grpc_score, post, serve_section
from tests.serve.helpers import export_untrained


def _leader_only_scores(lead: JobConfig) -> dict[str, float]:
    """The exported leader-only model applied to every row of the leader's table, by id."""
    section = serve_section(lead, fallback="leader_only")
    split, table, _ = load_own_half(lead, None, section.table)
    half = load_fallback(lead, section, split, keys_of(lead))
    assert half is not None
    features = torch.from_numpy(table.features)
    with torch.no_grad():
        logits = half.module(features, torch.zeros(len(features), lead.model.cut_width))
    scores = scores_table("id", table.ids, logits, half.model.task, half.target)
    return dict(zip(table.ids, scores["score"].to_pylist(), strict=True))


def test_leader_only_scores_what_the_follower_cannot(
    small_job: Callable[..., tuple[JobConfig, JobConfig]],
) -> None:
    lead, _ = small_job()
    export_untrained(lead)
    api.fallback(lead)
    expected = _leader_only_scores(lead)
    ids = list(expected)[:5]
    section = serve_section(lead, fallback="leader_only", follower_timeout=0.3)
    leader = start_party(lead, section, PlaintextSecurity())  # no follower: it never comes
    assert isinstance(leader, LeaderService)
    try:
        status, body = post(leader.http_port, "/v1/score", {"ids": [*ids, "nobody"]})
        answer = grpc_score(leader.grpc_port, ids[:2])
    finally:
        leader.drain()
    assert status == 200
    *scored, unknown = body["scores"]
    for example, item in zip(ids, scored, strict=True):
        assert item["scored"] is True and item["model"] == "leader_only"
        assert item["reason"] == "follower_unavailable"
        assert item["score"] == pytest.approx(expected[example], abs=1e-6)
        assert np.isclose(item["score"], 1 / (1 + np.exp(-item["log_odds"])))
    assert unknown == {"id": "nobody", "scored": False, "reason": "leader_lacks_id"}
    first = answer.scores[0]
    seen = (first.scored, first.model, first.reason)
    assert seen == (True, "leader_only", "follower_unavailable")
    assert first.values["score"] == pytest.approx(expected[ids[0]], abs=1e-6)


def test_fallback_settings_are_checked_at_start(
    small_job: Callable[..., tuple[JobConfig, JobConfig]], tmp_path: Path
) -> None:
    lead, follow = small_job()
    export_untrained(lead)
    export_untrained(follow)
    security = PlaintextSecurity()
    with pytest.raises(ModelError) as missing:  # not trained yet
        start_party(lead, serve_section(lead, fallback="leader_only"), security)
    assert missing.value.code == "model.missing"
    assert "cvfl fallback --config" in missing.value.message
    assert str(fallback_export(lead)) in missing.value.message
    with pytest.raises(ConfigError) as follower:
        start_party(follow, serve_section(follow, fallback="leader_only"), security)
    assert follower.value.code == "config.serve"
    assert "expected leader, seen follower" in follower.value.message
