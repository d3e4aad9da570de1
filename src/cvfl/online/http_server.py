"""uvicorn in a thread of this process, on a socket bound here (port 0 gives a free port)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from cvfl.errors import ConfigError
from cvfl.online.config import host_port
from cvfl.online.tls import ApiTls


def bind(address: str) -> socket.socket:
    """A listening TCP socket on ``address`` (``host:port``).

    Raises:
        ConfigError: the address cannot be bound (``config.serve``).
    """
    host, port = host_port("http_listen", address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"[serve] http_listen {address}: {exc}", code="config.serve") from exc
    sock.listen(1024)
    return sock


class HttpServer:
    """Serves ``app`` until :meth:`stop`; ``port`` is the bound port."""

    def __init__(
        self,
        app: Starlette,
        address: str,
        tls: ApiTls | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self._sock = bind(address)
        self.port = int(self._sock.getsockname()[1])
        options = tls.uvicorn_options() if tls is not None else {}
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, **options
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + start_timeout
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self, timeout: float) -> None:
        """Finish the requests in flight (up to ``timeout`` seconds) and stop."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
