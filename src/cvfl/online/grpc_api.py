"""``cvfl.v1.Scoring``: the gRPC request API. The servicer only translates and delegates.

It runs on a ``grpc.aio`` server in the micro-batcher's event loop (a thread of its own): a
request joins its micro-batch and waits for it without holding a thread or changing threads.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import grpc

from cvfl.errors import ConfigError, DataError, PeerUnavailableError
from cvfl.online.batching import LoopThread
from cvfl.online.metrics import Metrics
from cvfl.online.request import ScoreRequest, ScoreResult, check_request
from cvfl.online.tls import ApiTls
from cvfl.wire import scoring_pb2 as spb
from cvfl.wire import scoring_pb2_grpc as sgrpc

# A request holds at most 65,536 ids of 256 characters and their rows: 4 MiB is plenty for the
# request API (the bridge's own limit is for training tensors).
API_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 4 << 20),
    ("grpc.max_send_message_length", 16 << 20),
]
Score = Callable[[ScoreRequest], Awaitable[list[ScoreResult]]]


def request_from_proto(msg: spb.ScoreRequest, max_ids: int) -> ScoreRequest:
    """Validate a ScoreRequest (``data.request`` naming the field)."""
    features = [dict(row.values) for row in msg.features]
    return check_request(list(msg.ids), features, max_ids)


def result_to_proto(result: ScoreResult) -> spb.Score:
    """Encode one id's result."""
    values = {k: float(v) for k, v in result.values.items()}
    return spb.Score(
        id=result.id, scored=result.scored, reason=result.reason, values=values, model=result.model
    )


def results_to_proto(results: list[ScoreResult]) -> spb.ScoreResponse:
    """Encode a request's results, in request order."""
    return spb.ScoreResponse(scores=[result_to_proto(r) for r in results])


class ScoringServicer(sgrpc.ScoringServicer):
    """Decodes, hands the request to ``score`` and encodes the answer or the refusal."""

    def __init__(self, score: Score, max_ids: int, metrics: Metrics) -> None:
        self._score = score
        self._max_ids = max_ids
        self._metrics = metrics

    async def Score(  # noqa: N802 (the gRPC method's name)
        self,
        request: spb.ScoreRequest,
        context: grpc.aio.ServicerContext[spb.ScoreRequest, spb.ScoreResponse],
    ) -> spb.ScoreResponse:
        """Score one request."""
        started = time.perf_counter()
        try:
            parsed = request_from_proto(request, self._max_ids)
            results = await self._score(parsed)
        except DataError as exc:
            self._metrics.request("grpc", "invalid", time.perf_counter() - started)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        except PeerUnavailableError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
        self._metrics.request("grpc", "ok", time.perf_counter() - started)
        return results_to_proto(results)


class GrpcServer:
    """A ``grpc.aio`` server for ``servicer`` on ``address``, in ``runner``'s event loop.

    The loop is the caller's (the micro-batcher's, so that requests need not change threads);
    stopping the server leaves it running.
    """

    def __init__(
        self,
        servicer: ScoringServicer,
        address: str,
        runner: LoopThread,
        tls: ApiTls | None = None,
    ) -> None:
        self._runner = runner
        self._server: grpc.aio.Server | None = None
        self.port = runner.call(self._start(servicer, address, tls), 10.0)

    async def _start(self, servicer: ScoringServicer, address: str, tls: ApiTls | None) -> int:
        # made inside its loop: the server belongs to the loop it is created in
        self._server = grpc.aio.server(options=API_OPTIONS)
        sgrpc.add_ScoringServicer_to_server(servicer, self._server)
        if tls is None:
            port = self._server.add_insecure_port(address)
        else:
            port = self._server.add_secure_port(address, tls.grpc_credentials())
        if not port:
            raise ConfigError(f"[serve] grpc_listen {address}: cannot bind", code="config.serve")
        await self._server.start()
        return port

    def stop(self, grace: float) -> None:
        """Let the requests in flight finish (up to ``grace`` seconds), then stop serving."""
        if self._server is not None:
            self._runner.call(self._server.stop(grace), grace + 5.0)
