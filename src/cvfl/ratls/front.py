"""The one-port front door: every attested connection of a party enters through one address.

Python's gRPC has no hook for a custom certificate check and applies one message-size limit to a
whole server, so the attested channel needs two TLS endpoints: a server-authenticated one for the
unauthenticated ``Attest`` exchange (tiny messages, a few threads) and a mutual-TLS one that only
pinned, attested certificates can enter (training traffic). Both listen on loopback; this front
door owns the configured ``listen`` address and splices each TCP connection to one of them by the
server name (SNI) of its TLS ClientHello: :data:`SESSION_NAME` goes to the mutual-TLS endpoint,
anything else (another name, no name) to the attest endpoint. Routing needs no trust: the
mutual-TLS endpoint itself refuses a client whose certificate is not pinned.

So a single forwarded port, NAT rule or Kubernetes Service reaches the whole channel. The front
door binds without ``SO_REUSEPORT``: a second party started on a port in use is refused.

Bounded work for unauthenticated callers: a connection must deliver its ClientHello within
:attr:`FrontLimits.hello_timeout`; at most :attr:`FrontLimits.max_pending` hellos are awaited and
:attr:`FrontLimits.max_attest` attest connections are open at once (the oldest is closed to admit a
new one), each for at most :attr:`FrontLimits.attest_lifetime` seconds. One thread reads every
ClientHello and relays every attest connection through a selector with a bounded buffer per
direction; a session connection is handed to two threads of its own (:mod:`cvfl.ratls.relay`),
since every training message passes through it. At most :attr:`FrontLimits.max_sessions` are
relayed at once; past that the one that has relayed least is closed (a stranger's handshake
before a training stream).
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from cvfl.errors import ConfigError, mismatch
from cvfl.logs import get_logger
from cvfl.ratls.clienthello import MAX_HELLO_BYTES, MAX_RECORD, Verdict, scan
from cvfl.ratls.relay import Pair

log = get_logger(__name__)

ATTEST_NAME = "attest.cvfl.invalid"
SESSION_NAME = "session.cvfl.invalid"
CHUNK = 256 * 1024
_HELLO_LIMIT = MAX_HELLO_BYTES + MAX_RECORD
_TICK = 0.25  # how often deadlines are checked


@dataclass(frozen=True)
class FrontLimits:
    """Bounds on what unauthenticated callers can make the front door hold."""

    hello_timeout: float = 5.0
    max_pending: int = 64
    max_attest: int = 128
    attest_lifetime: float = 20.0
    max_sessions: int = 64


@dataclass
class _Half:
    """One direction of a relayed connection: bytes read from ``src`` not yet sent to ``dst``."""

    src: socket.socket
    dst: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    eof: bool = False
    done: bool = False


class _Conn:
    """A client connection: first its ClientHello, then a relay to the chosen endpoint."""

    def __init__(self, client: socket.socket, peer: str, now: float) -> None:
        self.client = client
        self.peer = peer
        self.opened = now
        self.hello = bytearray()
        self.route: str | None = None
        self.upstream: socket.socket | None = None
        self.connecting = False
        self.halves: list[_Half] = []

    def sockets(self) -> list[socket.socket]:
        return [self.client] if self.upstream is None else [self.client, self.upstream]


def _bind(address: str) -> socket.socket:
    host, _, port_text = address.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit():
        raise ConfigError(mismatch("listen address", "host:port", repr(address)), code="ratls.bind")
    try:
        infos = socket.getaddrinfo(
            bare or None, int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ConfigError(f"cannot bind {address}: {exc}", code="ratls.bind") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, never shared
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = " (another process listens there)" if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(
            f"cannot bind {address}: {exc.strerror or exc}{hint}", code="ratls.bind"
        ) from None
    sock.setblocking(False)
    return sock


class FrontDoor:
    """Accepts on ``address`` and relays each connection to the endpoint its SNI names.

    Args:
        address: The public ``host:port`` (port 0 picks one; see :attr:`port`).
        session_port: The loopback port of the mutual-TLS endpoint (:data:`SESSION_NAME`).
        attest_port: The loopback port of the attest endpoint (every other name).
        limits: Bounds for unauthenticated callers.

    Raises:
        ConfigError: ``ratls.bind`` when the address cannot be bound (e.g. already in use).
    """

    def __init__(
        self,
        address: str,
        *,
        session_port: int,
        attest_port: int,
        limits: FrontLimits | None = None,
    ) -> None:
        self.limits = limits or FrontLimits()
        self._routes = {"session": session_port, "attest": attest_port}
        self._listener = _bind(address)
        self.port = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._conns: dict[socket.socket, _Conn] = {}
        self._sessions: set[Pair] = set()
        self._sessions_lock = threading.Lock()
        self._closed = threading.Event()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="cvfl-front", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and close every relayed connection (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5.0)

    # The loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            checked = time.monotonic()
            while not self._closed.is_set():
                for key, events in self._selector.select(timeout=_TICK):
                    self._dispatch(key.fileobj, events)  # type: ignore[arg-type]
                if (now := time.monotonic()) - checked >= _TICK:
                    self._expire(now)
                    checked = now
        except Exception:  # the relay must never die silently
            log.exception("front door: relay loop failed; closing the listening port")
        finally:
            self._shutdown()

    def _dispatch(self, sock: socket.socket, events: int) -> None:
        if sock is self._listener:
            self._accept()
        elif sock is self._wake_r:
            with contextlib.suppress(OSError):
                self._wake_r.recv(64)
        elif (conn := self._conns.get(sock)) is not None:
            self._on_event(conn, sock, events)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                client, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("front door: accept failed: %s", exc)
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = f"{addr[0]}:{addr[1]}"
            self._evict("pending", self.limits.max_pending - 1)
            conn = _Conn(client, peer, time.monotonic())
            self._conns[client] = conn
            self._selector.register(client, selectors.EVENT_READ, None)

    def _on_event(self, conn: _Conn, sock: socket.socket, events: int) -> None:
        try:
            if conn.route is None:
                self._read_hello(conn)
            elif conn.connecting and sock is conn.upstream:
                self._finish_connect(conn)
            else:
                self._relay(conn, sock, events)
        except OSError as exc:
            log.debug("front door: %s: %s", conn.peer, exc)
            self._drop(conn)

    def _read_hello(self, conn: _Conn) -> None:
        data = conn.client.recv(_HELLO_LIMIT - len(conn.hello))
        if not data:
            self._drop(conn)
            return
        conn.hello += data
        result = scan(bytes(conn.hello))
        if result.verdict is Verdict.NEED_MORE and len(conn.hello) < _HELLO_LIMIT:
            return
        if result.verdict is not Verdict.HELLO:  # debug: strangers must not flood the log
            log.debug(
                "front door: closed %s: %s", conn.peer, result.reason or "ClientHello too large"
            )
            self._drop(conn)
            return
        if result.server_name == SESSION_NAME:
            self._hand_over(conn)
            return
        self._evict("attest", self.limits.max_attest - 1)
        self._open_upstream(conn, "attest")

    def _hand_over(self, conn: _Conn) -> None:
        """Give a session connection its own relay threads (after its ClientHello)."""
        self._conns.pop(conn.client, None)
        self._selector.unregister(conn.client)
        conn.client.setblocking(True)
        try:
            upstream = socket.create_connection(("127.0.0.1", self._routes["session"]), 2.0)
        except OSError as exc:
            log.warning("front door: session endpoint unreachable for %s: %s", conn.peer, exc)
            conn.client.close()
            return
        try:
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.sendall(conn.hello)
        except OSError as exc:
            log.debug("front door: %s: %s", conn.peer, exc)
            for sock in (conn.client, upstream):
                sock.close()
            return
        pair = Pair(conn.client, upstream, conn.peer)
        with self._sessions_lock:
            self._sessions.add(pair)
            surplus = len(self._sessions) - self.limits.max_sessions
            idle = sorted(self._sessions - {pair}, key=lambda p: p.relayed)[: max(0, surplus)]
        for other in idle:
            log.info("front door: closed %s (sessions at their bound)", other.peer)
            other.close()
        log.debug("front door: %s -> session", conn.peer)
        pair.start(self._session_done)

    def _session_done(self, pair: Pair) -> None:
        with self._sessions_lock:
            self._sessions.discard(pair)

    def _open_upstream(self, conn: _Conn, route: str) -> None:
        conn.route = route
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.upstream = upstream
        self._conns[upstream] = conn
        conn.halves = [
            _Half(conn.client, upstream, bytearray(conn.hello)),
            _Half(upstream, conn.client),
        ]
        conn.hello = bytearray()
        err = upstream.connect_ex(("127.0.0.1", self._routes[route]))
        conn.connecting = err in (errno.EINPROGRESS, errno.EWOULDBLOCK, 0)
        if not conn.connecting:
            raise OSError(err, f"cannot reach the {route} endpoint")
        self._set_interest(conn.client, 0)  # until the endpoint answers
        self._selector.register(upstream, selectors.EVENT_WRITE, None)
        log.debug("front door: %s -> %s", conn.peer, route)

    def _finish_connect(self, conn: _Conn) -> None:
        assert conn.upstream is not None
        err = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, f"cannot reach the {conn.route} endpoint")
        conn.connecting = False
        self._update(conn)

    def _relay(self, conn: _Conn, sock: socket.socket, events: int) -> None:
        for half in conn.halves:
            if events & selectors.EVENT_READ and sock is half.src and not half.eof:
                self._fill(half)
            if events & selectors.EVENT_WRITE and sock is half.dst and half.buf:
                self._flush(half)
        if all(half.done for half in conn.halves):
            self._drop(conn)
            return
        self._update(conn)

    def _fill(self, half: _Half) -> None:
        if len(half.buf) >= CHUNK:
            return
        data = half.src.recv(CHUNK - len(half.buf))
        if not data:
            half.eof = True
        elif half.buf:
            half.buf += data
            self._flush(half)
        else:  # the common case: pass it straight on, keep only what the peer did not take
            try:
                sent = half.dst.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent < len(data):
                half.buf += data[sent:]
        self._maybe_done(half)

    @staticmethod
    def _flush(half: _Half) -> None:
        try:
            sent = half.dst.send(half.buf)
        except (BlockingIOError, InterruptedError):
            return
        del half.buf[:sent]
        FrontDoor._maybe_done(half)

    @staticmethod
    def _maybe_done(half: _Half) -> None:
        if half.eof and not half.buf and not half.done:
            half.done = True
            with contextlib.suppress(OSError):
                half.dst.shutdown(socket.SHUT_WR)

    def _update(self, conn: _Conn) -> None:
        if conn.connecting or conn.upstream is None:
            return
        for sock in conn.sockets():
            mask = 0
            for half in conn.halves:
                if half.src is sock and not half.eof and len(half.buf) < CHUNK:
                    mask |= selectors.EVENT_READ
                if half.dst is sock and half.buf:
                    mask |= selectors.EVENT_WRITE
            self._set_interest(sock, mask)

    def _set_interest(self, sock: socket.socket, mask: int) -> None:
        try:
            current = self._selector.get_key(sock).events
        except KeyError:
            current = 0
        if mask == current:
            return
        if mask and current:
            self._selector.modify(sock, mask, None)
        elif mask:
            self._selector.register(sock, mask, None)
        else:
            self._selector.unregister(sock)

    # Bounds -------------------------------------------------------------------------------

    def _live(self) -> list[_Conn]:
        return list({id(c): c for c in self._conns.values()}.values())

    def _evict(self, route: str, keep: int) -> None:
        """Close the oldest connections of ``route`` ("pending" = still in its hello) over keep."""
        if route == "pending":
            group = [c for c in self._live() if c.route is None]
        else:
            group = [c for c in self._live() if c.route == route]
        if len(group) <= keep:
            return
        for conn in sorted(group, key=lambda c: c.opened)[: len(group) - keep]:
            log.debug("front door: closed %s (%s connections at their bound)", conn.peer, route)
            self._drop(conn)

    def _expire(self, now: float) -> None:
        for conn in self._live():
            if conn.route is None and now - conn.opened > self.limits.hello_timeout:
                log.debug("front door: closed %s (no ClientHello in time)", conn.peer)
                self._drop(conn)
            elif conn.route == "attest" and now - conn.opened > self.limits.attest_lifetime:
                self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        for sock in conn.sockets():
            self._conns.pop(sock, None)
            if sock in self._selector.get_map():
                self._selector.unregister(sock)
            sock.close()

    def _shutdown(self) -> None:
        for conn in self._live():
            self._drop(conn)
        with self._sessions_lock:
            sessions = list(self._sessions)
        for pair in sessions:
            pair.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError, KeyError, ValueError):
                if sock in self._selector.get_map():
                    self._selector.unregister(sock)
            sock.close()
        self._selector.close()
