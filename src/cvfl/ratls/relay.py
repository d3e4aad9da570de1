"""A relayed TCP connection with one blocking thread per direction (the front door's session route).

Attested sessions carry every training message, so their relay takes the shortest path: each
direction blocks in ``recv_into`` (the GIL released) and forwards what arrives at once. A
half-closed direction is passed on as a half-close; an error on either side ends both.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

BUFFER = 256 * 1024


class Pair:
    """A client connection spliced to an upstream endpoint, relayed by two threads."""

    def __init__(self, client: socket.socket, upstream: socket.socket, peer: str) -> None:
        self.client = client
        self.upstream = upstream
        self.peer = peer
        self.relayed = 0
        self._left = 2
        self._lock = threading.Lock()
        self._on_done: Callable[[Pair], None] | None = None

    def start(self, on_done: Callable[[Pair], None]) -> None:
        """Start relaying; ``on_done`` is called once both directions have ended."""
        self._on_done = on_done
        for src, dst in ((self.client, self.upstream), (self.upstream, self.client)):
            threading.Thread(
                target=self._pump, args=(src, dst), name="cvfl-front-session", daemon=True
            ).start()

    def close(self) -> None:
        """End both directions now (the threads notice and exit)."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        clean = False
        try:
            while n := src.recv_into(buf):
                dst.sendall(view[:n])
                self.relayed += n
            clean = True
        except OSError:
            pass
        if clean:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        else:
            self.close()
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            for sock in (self.client, self.upstream):
                sock.close()
            if self._on_done is not None:
                self._on_done(self)
