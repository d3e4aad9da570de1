"""The one public port before authentication: small messages, bounded work, no starvation.

The server runs in its own process so that its peak memory can be read from /proc.
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cvfl.ratls.cert import ATTEST_NAME
from cvfl.ratls.channel import MAX_ATTEST_MESSAGE
from cvfl.ratls.probe import fetch_certificate
from cvfl.wire import attest_pb2, attest_pb2_grpc

from .helpers import security

MIB = 1024 * 1024


def _serve(pipe: Connection) -> None:
    """Child process: a leader's attested port until told to stop."""
    from concurrent import futures

    from cvfl.bridge.security import SERVER_OPTIONS
    from tests.ratls.helpers import App
    from tests.ratls.helpers import security as make

    sec = make()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((App(sec).handler(),))
    binding = sec.bind(server, "127.0.0.1:0")
    server.start()
    pipe.send(binding.port)
    pipe.recv()
    server.stop(0).wait()
    binding.close()


def _peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@contextmanager
def leader_process() -> Iterator[tuple[int, int]]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    try:
        assert parent.poll(60), "the leader process did not start"
        yield proc.pid or 0, int(parent.recv())
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def _attest_stub(port: int) -> tuple[grpc.Channel, attest_pb2_grpc.AttestStub]:
    der = fetch_certificate("127.0.0.1", port, 5.0)
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    options = [
        ("grpc.ssl_target_name_override", ATTEST_NAME),
        ("grpc.max_send_message_length", -1),
    ]
    channel = grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(pem), options)
    return channel, attest_pb2_grpc.AttestStub(channel)


def _attested_handshake(port: int) -> float:
    start = time.perf_counter()
    connection = security(role="follower").connect(f"127.0.0.1:{port}", 10.0)
    took = time.perf_counter() - start
    connection.channel.close()
    return took


@pytest.mark.slow
def test_oversized_unauthenticated_messages_are_refused_without_memory_growth() -> None:
    with leader_process() as (pid, port):
        _attested_handshake(port)  # warm up: threads, TLS contexts, the first pin
        before = _peak_kib(pid)
        channel, stub = _attest_stub(port)
        with channel:
            huge = attest_pb2.AttestRequest(protocol_version=2, certificate_der=bytes(200 * MIB))
            with pytest.raises(grpc.RpcError) as info:
                stub.Attest(huge, timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            report = attest_pb2.RefusalReport(code="x", message="y" * (24 * MIB))
            with pytest.raises(grpc.RpcError) as info:
                stub.Report(report, timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert str(MAX_ATTEST_MESSAGE) in (info.value.details() or "")
        growth_mib = (_peak_kib(pid) - before) / 1024
        assert growth_mib < 32, f"peak memory grew by {growth_mib:.1f} MiB"
        assert _attested_handshake(port) < 2.0  # and the port still serves


def _hammer(port: int, stop: Any, calls: Any) -> None:
    """An unauthenticated caller: garbage Attest offers in a loop, and an idle connection."""
    idle = socket.create_connection(("127.0.0.1", port))
    try:
        channel, stub = _attest_stub(port)
        with channel:
            while not stop.is_set():
                try:
                    stub.Attest(
                        attest_pb2.AttestRequest(protocol_version=2, certificate_der=b"x" * 4000),
                        timeout=5,
                    )
                except grpc.RpcError:
                    with calls.get_lock():
                        calls.value += 1
    except Exception:  # a refused connection is the port defending itself
        pass
    finally:
        idle.close()


def _flood(port: int, stop: Any, calls: Any) -> None:
    """Child process: 64 unauthenticated callers (strangers run on their own machines, so their
    threads must not compete with the attested client for this test process's interpreter)."""
    threads = [
        threading.Thread(target=_hammer, args=(port, stop, calls), daemon=True) for _ in range(64)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


@pytest.mark.slow
def test_sixty_four_unauthenticated_callers_do_not_delay_an_attested_peer() -> None:
    with leader_process() as (_, port):
        _attested_handshake(port)
        ctx = multiprocessing.get_context("spawn")
        stop, calls = ctx.Event(), ctx.Value("i", 0)
        flood = ctx.Process(target=_flood, args=(port, stop, calls), daemon=True)
        flood.start()
        try:
            deadline = time.monotonic() + 30
            while calls.value < 200 and time.monotonic() < deadline:
                time.sleep(0.05)  # the flood is on
            times = [_attested_handshake(port) for _ in range(3)]
        finally:
            stop.set()
            flood.join(30)
            if flood.is_alive():
                flood.kill()
        assert calls.value >= 200, "the unauthenticated callers never got going"
        assert max(times) < 2.0, f"attested handshakes took {times} s under the flood"
