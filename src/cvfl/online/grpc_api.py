"""``cvfl.v1.Scoring``: the gRPC request API. The servicer only translates and delegates."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from cvfl.errors import DataError, PeerUnavailableError
from cvfl.online.metrics import Metrics
from cvfl.online.request import ScoreRequest, ScoreResult, check_request
from cvfl.wire import scoring_pb2 as spb
from cvfl.wire import scoring_pb2_grpc as sgrpc

Score = Callable[[ScoreRequest, str], list[ScoreResult]]


def request_from_proto(msg: spb.ScoreRequest, max_ids: int) -> ScoreRequest:
    """Validate a ScoreRequest (``data.request`` naming the field)."""
    features = [dict(row.values) for row in msg.features]
    return check_request(list(msg.ids), features, max_ids)


def result_to_proto(result: ScoreResult) -> spb.Score:
    """Encode one id's result."""
    values = {k: float(v) for k, v in result.values.items()}
    return spb.Score(id=result.id, scored=result.scored, reason=result.reason, values=values)


def results_to_proto(results: list[ScoreResult]) -> spb.ScoreResponse:
    """Encode a request's results, in request order."""
    return spb.ScoreResponse(scores=[result_to_proto(r) for r in results])


class ScoringServicer(sgrpc.ScoringServicer):
    """Decodes, hands the request to ``score`` and encodes the answer or the refusal."""

    def __init__(self, score: Score, max_ids: int, metrics: Metrics) -> None:
        self._score = score
        self._max_ids = max_ids
        self._metrics = metrics

    def Score(  # noqa: N802 (the gRPC method's name)
        self, request: spb.ScoreRequest, context: grpc.ServicerContext
    ) -> spb.ScoreResponse:
        """Score one request."""
        try:
            parsed = request_from_proto(request, self._max_ids)
            return results_to_proto(self._score(parsed, "grpc"))
        except DataError as exc:
            self._metrics.request("grpc", "invalid", 0.0)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        except PeerUnavailableError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
