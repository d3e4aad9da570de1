"""``cvfl serve`` scores what ``cvfl predict`` scores, over gRPC and HTTP; the follower sees ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pyarrow.parquet as pq
import pytest

from cvfl import api
from cvfl.bridge.link import ClientLink
from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import PeerUnavailableError
from cvfl.online import start_party
from cvfl.online.request import ScoreRequest
from cvfl.online.service import FollowerService, LeaderService
from cvfl.train.config import JobConfig
from cvfl.wire import bridge_pb2 as pb
from tests.online.helpers import exported_pair, get, grpc_score, post, serve_section

TOL = 1e-6


@pytest.fixture
def served(
    small_job: Callable[..., tuple[JobConfig, JobConfig]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[LeaderService, dict[str, float], list[pb.Envelope]]]:
    """Both parties serving the small job, ``cvfl predict``'s scores, what the follower got.

    ``request.param`` (if given) is both parties' ``[serve] cache_ids``.
    """
    cache_ids = getattr(request, "param", 100_000)
    lead, follow = small_job(peer__port_file=str(tmp_path / "leader.port"))
    scores = exported_pair(lead, follow, tmp_path)
    expected = dict(zip(scores["example_id"].to_pylist(), scores["score"].to_pylist(), strict=True))
    seen: list[pb.Envelope] = []
    receive = ClientLink.recv

    def recording(self: ClientLink, timeout: float) -> pb.Envelope:
        envelope = receive(self, timeout)
        seen.append(envelope)
        return envelope

    monkeypatch.setattr(ClientLink, "recv", recording)
    security = PlaintextSecurity()
    settings = {"table": str(lead.data.path), "grpc_listen": "127.0.0.1:0", "cache_ids": cache_ids}
    leader = api.serve(lead, settings=settings | {"http_listen": "127.0.0.1:0"})
    follower = start_party(follow, serve_section(follow, cache_ids=cache_ids), security)
    assert isinstance(leader, LeaderService) and isinstance(follower, FollowerService)
    try:
        assert leader.wait_for_follower(20)
        yield leader, expected, seen
    finally:
        follower.drain()
        leader.drain()


# whole tables cached at load, the 7 most recent rows (evicting), no cache
@pytest.mark.parametrize("served", [100_000, 7, 0], indirect=True, ids=str)
def test_http_and_grpc_scores_equal_predict(
    served: tuple[LeaderService, dict[str, float], list[pb.Envelope]],
) -> None:
    leader, expected, seen = served
    ids = sorted(expected)[:40]
    status, body = post(leader.http_port, "/v1/score", {"ids": [*ids, "nobody"]})
    assert status == 200
    *scored, missing = body["scores"]
    assert missing == {"id": "nobody", "scored": False, "reason": "leader_lacks_id"}
    for item, example in zip(scored, ids, strict=True):
        assert item["id"] == example and item["scored"] is True
        assert abs(item["score"] - expected[example]) <= TOL
    raw = pq.read_table(leader.party.cfg.data.path).to_pylist()
    rows = {row.pop("example_id"): row for row in raw}
    inline = [{k: v for k, v in rows[i].items() if k != "label"} for i in ids[:5]]
    status, body = post(leader.http_port, "/v1/score", {"ids": ids[:5], "features": inline})
    assert status == 200
    for item in body["scores"]:
        assert abs(item["score"] - expected[item["id"]]) <= TOL
    answer = grpc_score(leader.grpc_port, ids)
    assert [s.id for s in answer.scores] == ids
    for score in answer.scores:
        assert score.scored and abs(score.values["score"] - expected[score.id]) <= TOL
    kinds = {e.WhichOneof("body") for e in seen}
    assert kinds == {"predict_hello", "lookup"}
    for envelope in seen:
        if envelope.WhichOneof("body") == "lookup":
            fields = {f.name for f, _ in envelope.lookup.ListFields()}
            assert fields <= {"batch", "ids"}
            assert set(envelope.lookup.ids) <= set(ids) | {"nobody"}
    status, text = get(leader.http_port, "/metrics")
    assert status == 200 and 'cvfl_serve_requests_total{api="http",outcome="ok"} 2' in text
    assert 'cvfl_serve_fallbacks_total{reason="leader_lacks_id"} 1' in text
    assert "cvfl_serve_follower_connected 1" in text
    assert get(leader.http_port, "/healthz")[0] == 200


def test_malformed_requests_name_the_field(
    served: tuple[LeaderService, dict[str, float], list[pb.Envelope]],
) -> None:
    leader, _, _ = served
    status, body = post(leader.http_port, "/v1/score", {"ids": ["a", 3]})
    assert status == 400 and body["error"]["code"] == "data.request"
    assert body["error"]["message"].startswith("ids[1]")
    status, body = post(leader.http_port, "/v1/score", b"{not json")
    assert status == 400 and body["error"]["message"].startswith("body")
    status, body = post(leader.http_port, "/v1/score", {"ids": ["a"], "features": [{"x": "y"}]})
    assert status == 400 and body["error"]["message"].startswith("features[0].x")
    status, body = post(leader.http_port, "/v1/score", {"ids": ["a"], "features": [{"x": 1}]})
    assert status == 400 and body["error"]["code"] == "data.missing_column"
    assert body["error"]["message"].endswith("missing column 'l0'")
    status, body = post(leader.http_port, "/v1/score", b" " * (5 << 20))
    assert status == 400 and body["error"]["message"].startswith("body")
    with pytest.raises(grpc.RpcError) as caught:
        grpc_score(leader.grpc_port, [])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details()
    assert details is not None and details.startswith("ids")


def test_drain_finishes_queued_requests_then_refuses(
    served: tuple[LeaderService, dict[str, float], list[pb.Envelope]],
) -> None:
    leader, expected, _ = served
    ids = sorted(expected)[:8]
    futures = [leader.submit(ScoreRequest((example,))) for example in ids]
    leader.drain()
    assert [f.result(timeout=0)[0].scored for f in futures] == [True] * len(ids)
    with pytest.raises(PeerUnavailableError) as caught:
        leader.submit(ScoreRequest((ids[0],)))
    assert caught.value.code == "serve.draining"
