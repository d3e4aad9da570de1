"""RA-TLS channel: full mutual handshake time, and attested vs plaintext stream throughput.

Run: ``.venv/bin/python benchmarks/handshake.py [--rounds 30] [--steps 1000] [--repeats 5]``

The handshake is everything ``RatlsSecurity.connect`` does on loopback with the simulated TEE, all
through the server's one port (its front door routes by TLS server name): fetch and verify the
server's certificate (evidence, policy, job terms), Attest (the server verifies ours and pins it),
open mutual TLS and Confirm. Throughput streams cut-layer-sized messages (batch 32 x 64 float32 =
8 KiB forward, the same back) over one bidirectional stream, as the bridge does, through the
attested channel (front door included) and through plaintext gRPC in the same run.
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
from cvfl.attestation.terms import JobTerms
from cvfl.bridge.security import SERVER_OPTIONS, Binding, ChannelSecurity, PlaintextSecurity
from cvfl.ratls import RatlsSecurity

PAYLOAD = bytes(32 * 64 * 4)
METHOD = "/cvfl.bench.Pipe/Steps"


def _pipe(security: ChannelSecurity) -> grpc.GenericRpcHandler:
    def steps(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        security.authorize(context)
        yield from requests

    return grpc.method_handlers_generic_handler(
        "cvfl.bench.Pipe", {"Steps": grpc.stream_stream_rpc_method_handler(steps)}
    )


def _server(security: ChannelSecurity) -> tuple[grpc.Server, Binding]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((_pipe(security),))
    binding = security.bind(server, "127.0.0.1:0")
    server.start()
    return server, binding


def _pair() -> tuple[RatlsSecurity, RatlsSecurity]:
    provider = SimulatedProvider()
    policy = Policy(allow_simulated=True, allow_any_identity=True)
    terms = {
        role: JobTerms("bench", role, "train", "file", False, "ecdh", policy.digest())
        for role in ("leader", "follower")
    }
    server = RatlsSecurity(provider, SimulatedVerifier(), policy, terms=terms["leader"])
    client = RatlsSecurity(provider, SimulatedVerifier(), policy, terms=terms["follower"])
    return server, client


def handshakes(rounds: int) -> list[float]:
    server_sec, client_sec = _pair()
    server, binding = _server(server_sec)
    times = []
    try:
        for _ in range(rounds + 2):
            start = time.perf_counter()
            connection = client_sec.connect(f"127.0.0.1:{binding.port}", 10.0)
            times.append(time.perf_counter() - start)
            connection.channel.close()
    finally:
        server.stop(0).wait()
        binding.close()
    return times[2:]  # the first two warm up gRPC and the TLS libraries


def throughput(server_sec: ChannelSecurity, client_sec: ChannelSecurity, steps: int) -> float:
    server, binding = _server(server_sec)
    try:
        channel = client_sec.connect(f"127.0.0.1:{binding.port}", 10.0).channel
        call = channel.stream_stream(METHOD)
        list(call(iter([PAYLOAD] * 50)))  # warm up
        start = time.perf_counter()
        replies = sum(1 for _ in call(iter([PAYLOAD] * steps)))
        elapsed = time.perf_counter() - start
        channel.close()
    finally:
        server.stop(0).wait()
        binding.close()
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

    server_sec, client_sec = _pair()
    plain = PlaintextSecurity()
    plain_rates, ratls_rates = [], []
    for _ in range(args.repeats):  # alternate, so load from other processes hits both alike
        plain_rates.append(throughput(plain, plain, args.steps))
        ratls_rates.append(throughput(server_sec, client_sec, args.steps))
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
