"""RA-TLS channel: full mutual handshake time, and attested vs plaintext stream throughput.

Run: ``.venv/bin/python benchmarks/handshake.py [--rounds 30] [--steps 1000] [--repeats 5]``

The handshake is everything ``RatlsSecurity.connect`` does on loopback with the simulated TEE: fetch
and verify the server's certificate (evidence + policy), Attest (the server verifies ours and
pins it), open mutual TLS and Confirm. Throughput streams cut-layer-sized messages (batch 32 x 64
float32 = 8 KiB forward, the same back) over one bidirectional stream, as the bridge does, through
the attested channel and through plaintext gRPC in the same run.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Iterator
from concurrent import futures

import grpc

from cvfl.attestation.policy import Policy
from cvfl.attestation.simulated import SimulatedProvider, SimulatedVerifier
from cvfl.bridge.security import SERVER_OPTIONS, PlaintextSecurity
from cvfl.ratls import RatlsSecurity

PAYLOAD = bytes(32 * 64 * 4)
METHOD = "/cvfl.bench.Pipe/Steps"


def _pipe(security: object) -> grpc.GenericRpcHandler:
    def steps(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        security.authorize(context)  # type: ignore[attr-defined]
        yield from requests

    return grpc.method_handlers_generic_handler(
        "cvfl.bench.Pipe", {"Steps": grpc.stream_stream_rpc_method_handler(steps)}
    )


def _server(security: object) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((_pipe(security),))
    port = security.bind(server, "127.0.0.1:0")  # type: ignore[attr-defined]
    server.start()
    return server, port


def handshakes(rounds: int) -> list[float]:
    provider = SimulatedProvider()
    policy = Policy(allow_simulated=True, allow_any_identity=True)
    server_sec = RatlsSecurity(provider, SimulatedVerifier(), policy)
    client_sec = RatlsSecurity(provider, SimulatedVerifier(), policy)
    server, port = _server(server_sec)
    times = []
    try:
        for _ in range(rounds + 2):
            start = time.perf_counter()
            channel = client_sec.connect(f"127.0.0.1:{port}", 10.0)
            times.append(time.perf_counter() - start)
            channel.close()
    finally:
        server.stop(0).wait()
    return times[2:]  # the first two warm up gRPC and the TLS libraries


def throughput(security: object, channel_of: object, steps: int) -> float:
    server, port = _server(security)
    try:
        channel = channel_of(f"127.0.0.1:{port}")  # type: ignore[operator]
        call = channel.stream_stream(METHOD)
        list(call(iter([PAYLOAD] * 50)))  # warm up
        start = time.perf_counter()
        replies = sum(1 for _ in call(iter([PAYLOAD] * steps)))
        elapsed = time.perf_counter() - start
        channel.close()
    finally:
        server.stop(0).wait()
    assert replies == steps
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("cvfl").setLevel(logging.ERROR)

    times = handshakes(args.rounds)
    ms = sorted(t * 1000 for t in times)
    print(f"full mutual RA-TLS handshake, both verifications, loopback, n={len(ms)}:")
    print(
        f"  median {statistics.median(ms):.1f} ms  p10 {ms[len(ms) // 10]:.1f} ms  "
        f"p90 {ms[(9 * len(ms)) // 10]:.1f} ms  (target: median < 50 ms)"
    )

    provider = SimulatedProvider()
    policy = Policy(allow_simulated=True, allow_any_identity=True)
    server_sec = RatlsSecurity(provider, SimulatedVerifier(), policy)
    client_sec = RatlsSecurity(provider, SimulatedVerifier(), policy)
    plain = PlaintextSecurity()
    plain_rates, ratls_rates = [], []
    for _ in range(args.repeats):  # alternate, so load from other processes hits both alike
        plain_rates.append(throughput(plain, lambda t: plain.connect(t, 10.0), args.steps))
        ratls_rates.append(
            throughput(server_sec, lambda t: client_sec.connect(t, 10.0), args.steps)
        )
    base, ratls_rate = statistics.median(plain_rates), statistics.median(ratls_rates)
    kib = len(PAYLOAD) / 1024
    print(
        f"stream throughput, {kib:.0f} KiB each way per step, {args.steps} steps, "
        f"median of {args.repeats} alternating runs:"
    )
    print(f"  plaintext {base:.0f} steps/s   ratls {ratls_rate:.0f} steps/s")
    print(f"  ratio ratls/plaintext {ratls_rate / base:.2f}  (target: >= 0.9)")


if __name__ == "__main__":
    main()
