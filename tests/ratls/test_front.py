"""The front door's ClientHello reader (a parser of attacker bytes) and its bounds."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import ConfigError
from cvfl.ratls.clienthello import MAX_HELLO_BYTES, Verdict, scan
from cvfl.ratls.front import FrontDoor, FrontLimits


def client_hello(server_name: str | None) -> bytes:
    """The first flight a real TLS client (Python's ssl) sends, with or without SNI."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


HELLO = client_hello("session.cvfl.invalid")


def test_real_client_hellos_name_their_server() -> None:
    assert scan(HELLO).verdict is Verdict.HELLO
    assert scan(HELLO).server_name == "session.cvfl.invalid"
    assert scan(client_hello("Attest.CVFL.invalid")).server_name == "attest.cvfl.invalid"
    no_sni = scan(client_hello(None))
    assert no_sni.verdict is Verdict.HELLO and no_sni.server_name is None


def test_every_prefix_of_a_hello_needs_more() -> None:
    for cut in range(len(HELLO)):
        assert scan(HELLO[:cut]).verdict is Verdict.NEED_MORE, cut


def test_a_hello_split_over_two_records_is_read() -> None:
    body = HELLO[5:]
    first, second = body[:40], body[40:]
    records = b"".join(
        b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part for part in (first, second)
    )
    assert scan(records).server_name == "session.cvfl.invalid"


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # plaintext gRPC
        b"\x16\x03\x01\x00\x00",  # an empty record
        b"\x16\x03\x01\x48\x01" + b"\x00" * 5,  # a record longer than TLS allows
        b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",  # a ServerHello, not a ClientHello
        b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",  # a hello of 16 MiB announced
    ],
)
def test_what_is_not_a_client_hello_is_refused(data: bytes) -> None:
    assert scan(data).verdict is Verdict.NOT_TLS


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_a_verdict(data: bytes) -> None:
    result = scan(data)
    assert result.verdict in Verdict
    if result.server_name is not None:
        assert result.verdict is Verdict.HELLO and 0 < len(result.server_name) <= 255


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(HELLO) - 1), st.integers(0, 255))
def test_mutated_hellos_give_a_verdict(position: int, value: int) -> None:
    data = bytearray(HELLO)
    data[position] = value
    assert scan(bytes(data)).verdict in Verdict


def test_a_hello_larger_than_the_bound_is_refused() -> None:
    record = b"\x16\x03\x01" + (16384).to_bytes(2, "big") + b"\x01\x00\xff\xff" + bytes(16380)
    assert scan(record * ((MAX_HELLO_BYTES // 16384) + 2)).verdict is Verdict.NOT_TLS


class Echo:
    """A loopback TCP echo server standing in for an endpoint behind the front door."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


def _roundtrip(port: int, hello: bytes, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(hello + payload)
        sock.shutdown(socket.SHUT_WR)
        out = bytearray()
        while data := sock.recv(65536):
            out += data
        return bytes(out)


@pytest.mark.parametrize("name", ["session.cvfl.invalid", "attest.cvfl.invalid"])
def test_both_routes_relay_every_byte_both_ways(name: str) -> None:
    session, attest = Echo(), Echo()
    front = FrontDoor("127.0.0.1:0", session_port=session.port, attest_port=attest.port)
    try:
        hello = client_hello(name)
        payload = bytes(range(256)) * 8192  # 2 MiB, several relay buffers
        assert _roundtrip(front.port, hello, payload) == hello + payload
    finally:
        front.close()


def test_a_port_in_use_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            FrontDoor(f"127.0.0.1:{port}", session_port=1, attest_port=1)
    assert info.value.code == "ratls.bind" and "in use" in info.value.message


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_silent_and_non_tls_connections_are_closed_and_the_oldest_evicted() -> None:
    echo = Echo()
    limits = FrontLimits(hello_timeout=1.0, max_pending=3)
    front = FrontDoor("127.0.0.1:0", session_port=echo.port, attest_port=echo.port, limits=limits)
    try:
        plain = socket.create_connection(("127.0.0.1", front.port))
        plain.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert _closed_by_peer(plain, 2.0)  # not TLS: closed at once
        silent = [socket.create_connection(("127.0.0.1", front.port)) for _ in range(4)]
        time.sleep(0.3)
        assert _closed_by_peer(silent[0], 1.0)  # the oldest of 4 pending, over the bound of 3
        started = time.monotonic()
        assert _closed_by_peer(silent[3], 3.0)  # no ClientHello within hello_timeout
        assert time.monotonic() - started < 2.5
        hello = client_hello("attest.cvfl.invalid")
        assert _roundtrip(front.port, hello, b"still serving") == hello + b"still serving"
        for sock in (plain, *silent):
            sock.close()
    finally:
        front.close()
