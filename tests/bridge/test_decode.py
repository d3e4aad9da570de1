"""A message from the peer that is not an Envelope ends the session as a ProtocolError.

The leader's side reports it to the peer as an Abort (code ``protocol.decode``) instead of the
stream just ending.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc
import pytest

from cvfl.bridge.link import SESSION_METHOD, BridgeServer
from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import ProtocolError
from cvfl.wire import bridge_pb2 as pb


def _frames(out: queue.Queue[bytes | None]) -> Iterator[bytes]:
    while (item := out.get()) is not None:
        yield item


@pytest.mark.parametrize("junk", [b"\xff\xff\xff\xff", b"\x0a\x05abc", b"\x08" + b"\xff" * 11])
def test_junk_from_the_peer_is_a_protocol_error_told_back(junk: bytes) -> None:
    server = BridgeServer(PlaintextSecurity(), "127.0.0.1:0")
    out: queue.Queue[bytes | None] = queue.Queue()
    received: list[pb.Envelope] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = channel.stream_stream(
                SESSION_METHOD,
                request_serializer=None,
                response_deserializer=pb.Envelope.FromString,
            )
            responses = call(_frames(out))
            reader = threading.Thread(target=lambda: received.extend(responses), daemon=True)
            reader.start()
            out.put(pb.Envelope(seq=1, heartbeat=pb.Heartbeat()).SerializeToString())
            out.put(junk)
            link = server.accept(10.0)
            assert link.recv(5.0).WhichOneof("body") == "heartbeat"
            with pytest.raises(ProtocolError) as info:
                link.recv(5.0)
            assert info.value.code == "protocol.decode"
            assert f"{len(junk)} bytes" in info.value.message
            with pytest.raises(ProtocolError):
                link.recv(1.0)  # and every later read
            link.abort(info.value)
            out.put(None)
            reader.join(10)
    finally:
        server.stop(0)
    assert received[-1].WhichOneof("body") == "abort"
    assert received[-1].abort.code == "protocol.decode"
