"""A small exported job served in this process, and stdlib HTTP and gRPC clients for it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa

from cvfl.online.config import ServeSection
from cvfl.serve import read_scores
from cvfl.train.config import JobConfig
from cvfl.wire import scoring_pb2 as spb
from cvfl.wire import scoring_pb2_grpc as sgrpc
from tests.conftest import keys_of
from tests.serve.helpers import export_untrained, predict_both


def serve_section(cfg: JobConfig, **changes: Any) -> ServeSection:
    """Serve the party's own training table; the leader on free ports."""
    values: dict[str, Any] = {
        "table": cfg.data.path,
        "grpc_listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "follower_timeout": 2.0,
        "drain_seconds": 2.0,
    }
    values.update(changes)
    return ServeSection(**values)


def exported_pair(lead: JobConfig, follow: JobConfig, tmp: Path) -> pa.Table:
    """Export both (untrained) halves and return ``cvfl predict``'s scores of every row."""
    export_untrained(lead)
    export_untrained(follow)
    return predicted(lead, follow, tmp)


def predicted(lead: JobConfig, follow: JobConfig, tmp: Path) -> pa.Table:
    """``cvfl predict``'s scores of every row with the halves exported now."""
    leader, follower = predict_both(lead, follow, tmp)
    assert not isinstance(leader, BaseException), leader
    assert not isinstance(follower, BaseException), follower
    assert leader.output is not None
    return read_scores(Path(leader.output), keys_of(lead))


def post(port: int, path: str, body: object, timeout: float = 10.0) -> tuple[int, Any]:
    """POST JSON (or raw bytes) with urllib; the status and the decoded JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(port: int, path: str) -> tuple[int, str]:
    """GET a text page."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def grpc_score(port: int, ids: list[str], timeout: float = 10.0) -> spb.ScoreResponse:
    """Call cvfl.v1.Scoring/Score on a fresh plaintext channel."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = sgrpc.ScoringStub(channel)
        return stub.Score(spb.ScoreRequest(ids=ids), timeout=timeout)
