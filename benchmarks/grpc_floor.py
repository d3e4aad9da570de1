"""The gRPC floor under online scoring: a no-op ``cvfl.v1.Scoring`` server and its client.

A ``grpc.aio`` server in a child process answers every ``ScoreRequest`` with a constant score
per id (no model, no follower); the client is ``benchmarks/serving.py``'s (one thread per
caller, blocking calls). It prints requests/s, p50/p99 latency and the CPU milliseconds per
request of the server and of the client: what any service in this stack costs before it does
any work, to compare with ``benchmarks/serving.py``'s columns.

    .venv/bin/python benchmarks/grpc_floor.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np

from cvfl.wire import scoring_pb2 as spb
from cvfl.wire import scoring_pb2_grpc as sgrpc

sys.path.insert(0, str(Path(__file__).parent))
import serving  # the same client and CPU reading as the serving benchmark


class NoOp(sgrpc.ScoringServicer):
    """Answers every id with the same score."""

    async def Score(  # noqa: N802 (the gRPC method's name)
        self,
        request: spb.ScoreRequest,
        context: grpc.aio.ServicerContext[spb.ScoreRequest, spb.ScoreResponse],
    ) -> spb.ScoreResponse:
        """One constant score per id."""
        scores = [
            spb.Score(id=i, scored=True, values={"score": 0.5}, model="split") for i in request.ids
        ]
        return spb.ScoreResponse(scores=scores)


def serve() -> None:
    """Run the no-op server on a free loopback port (printed) until killed."""

    async def run() -> None:
        server = grpc.aio.server()
        sgrpc.add_ScoringServicer_to_server(NoOp(), server)
        print(server.add_insecure_port("127.0.0.1:0"), flush=True)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def main() -> None:
    """Start the server, load it from this process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        ids = [str(i) for i in range(1000)]
        server0 = serving.cpu_seconds(child.pid)
        mine0 = resource.getrusage(resource.RUSAGE_SELF)
        lat = serving.level(port, ids, args.concurrency, args.seconds)
        mine1 = resource.getrusage(resource.RUSAGE_SELF)
        n = len(lat)
        server_ms = (serving.cpu_seconds(child.pid) - server0) * 1000 / n
        client = (mine1.ru_utime + mine1.ru_stime) - (mine0.ru_utime + mine0.ru_stime)
        p50, p99 = np.percentile(lat, [50, 99]) * 1000
        print(
            f"no-op grpc.aio server, concurrency {args.concurrency}: {n / args.seconds:.0f} "
            f"requests/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms; CPU ms per request: server "
            f"{server_ms:.2f}, client {client * 1000 / n:.2f}"
        )
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
