"""A loopback TCP proxy that behaves like a wide-area link: propagation delay and a rate limit.

Each direction is modelled as a bottleneck of ``mbit`` Mbit/s followed by ``rtt_ms / 2`` of
propagation delay: a chunk that arrives at time t leaves the bottleneck at
``max(t, link free) + size / rate`` and is delivered ``rtt / 2`` later, in order. TLS passes
through untouched (the proxy only moves bytes), so the attested channel runs over it as it
would over a WAN. Used by ``benchmarks/train_throughput.py --wan``.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time


class WanProxy:
    """Forward 127.0.0.1:<port> to ``target_port`` with a round-trip delay and a rate limit."""

    def __init__(self, target_port: int, rtt_ms: float, mbit: float) -> None:
        self.target_port = target_port
        self.one_way = rtt_ms / 2000.0
        self.bytes_per_s = mbit * 1e6 / 8.0 if mbit > 0 else 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(s)
            for src, dst in ((client, upstream), (upstream, client)):
                line: queue.Queue[tuple[float, bytes]] = queue.Queue()
                threading.Thread(target=self._receive, args=(src, line), daemon=True).start()
                threading.Thread(target=self._deliver, args=(dst, line), daemon=True).start()

    def _receive(self, src: socket.socket, line: queue.Queue[tuple[float, bytes]]) -> None:
        link_free = 0.0
        try:
            while data := src.recv(65536):
                now = time.monotonic()
                serialise = len(data) / self.bytes_per_s if self.bytes_per_s else 0.0
                link_free = max(now, link_free) + serialise
                line.put((link_free + self.one_way, data))
        except OSError:
            pass
        line.put((0.0, b""))

    def _deliver(self, dst: socket.socket, line: queue.Queue[tuple[float, bytes]]) -> None:
        try:
            while True:
                due, data = line.get()
                if not data:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._closed = True
        self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()
