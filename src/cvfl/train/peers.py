"""How a party waits for its peer, tells it why it stops, and explains the peer's stop.

- Waiting for the peer logs its address and the seconds left every few seconds.
- A party that fails before a session exists (bad data, a checkpoint of another configuration)
  still tells the peer: the leader accepts the follower's stream for a short window, the
  follower dials the leader, and each sends an Abort with the error's code and a short reason
  (:func:`cvfl.bridge.link.abort_envelope`: never a local path, row or id).
- The peer's Abort is shown as ``the leader stopped: [data.value] ...; fix it there and restart
  both``; a lost peer is named with the newest checkpoint both parties hold.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import NoReturn

from cvfl.bridge.link import BridgeServer, ClientLink, Link, dial
from cvfl.bridge.security import ChannelSecurity
from cvfl.errors import CvflError, PeerStoppedError, PeerUnavailableError
from cvfl.logs import get_logger
from cvfl.train.config import JobConfig, PeerSection
from cvfl.train.recovery import CheckpointStore

log = get_logger(__name__)

NOTICE_WINDOW = 10.0  # how long a party that failed before training waits to tell its peer
TICK = 5.0  # seconds between "waiting for ..." lines


@contextlib.contextmanager
def countdown(
    describe: Callable[[], str], timeout: float, every: float | None = None
) -> Iterator[None]:
    """Log ``<describe()>: N s left`` every ``every`` (default :data:`TICK`) seconds until done."""
    stop = threading.Event()
    deadline = time.monotonic() + timeout
    every = every or TICK

    def tick() -> None:
        while not stop.wait(every):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            log.info("%s: %.0f s left", describe(), left)

    thread = threading.Thread(target=tick, daemon=True, name="cvfl-countdown")
    thread.start()
    try:
        yield
    finally:
        stop.set()


def accept_follower(server: BridgeServer, timeout: float) -> Link:
    """Wait for the follower's stream, saying so with a countdown."""
    what = f"waiting for the follower to connect on port {server.port}"
    log.info("%s (up to %.0f s)", what, timeout)
    with countdown(lambda: what, timeout):
        return server.accept(timeout)


def leader_where(peer: PeerSection) -> str:
    """The leader's address as the follower dials it now (or where its port will come from)."""
    try:
        return peer.leader_address()
    except PeerUnavailableError:
        host = peer.connect.rsplit(":", 1)[0]
        return f"{host} (port from {peer.port_file}, not written yet)"


def dial_leader(security: ChannelSecurity, peer: PeerSection, timeout: float) -> Link:
    """Dial the leader (retrying), saying where and how long is left every few seconds."""
    log.info("connecting to the leader at %s (up to %.0f s)", leader_where(peer), timeout)
    with countdown(lambda: f"waiting for the leader at {leader_where(peer)}", timeout):
        return dial(security, peer.leader_address, timeout)


def tell_peer(cfg: JobConfig, security: ChannelSecurity, error: CvflError, worker: int = 0) -> None:
    """Tell the peer why this party stops before any session began (best effort, bounded)."""
    peer = cfg.peer.for_worker(worker)
    window = min(cfg.peer.connect_timeout, NOTICE_WINDOW)
    if cfg.role == "follower":
        tell_leader(security, peer, error, window)
        return
    try:
        server = BridgeServer(security, peer.listen, peer.port_file)
    except CvflError as exc:  # e.g. the port is taken: nobody to tell through it
        log.info("could not tell the follower why (%s)", exc.message)
        return
    try:
        tell_follower(server, error, window)
    finally:
        server.stop()


def tell_follower(server: BridgeServer, error: CvflError, window: float) -> None:
    """Accept the follower's stream within ``window`` seconds and send it this side's Abort."""
    log.warning(
        "stopping on [%s]; telling the follower why (waiting up to %.0f s for it to connect)",
        error.code,
        window,
    )
    try:
        link = server.accept(window)
    except PeerUnavailableError:
        log.info("no follower connected within %.0f s: it was not told", window)
        return
    link.abort(error)
    link.wait_closed(2.0)


def tell_leader(
    security: ChannelSecurity, peer: PeerSection, error: CvflError, window: float
) -> None:
    """Dial the leader within ``window`` seconds and send it this side's Abort."""
    log.warning(
        "stopping on [%s]; telling the leader at %s why (up to %.0f s)",
        error.code,
        leader_where(peer),
        window,
    )
    try:
        link = dial(security, peer.leader_address, window)
    except PeerUnavailableError:
        log.info("the leader was not reachable within %.0f s: it was not told", window)
        return
    try:
        link.abort(error)
        link.wait_closed(2.0)
    finally:
        if isinstance(link, ClientLink):
            link.shutdown()


def explain(error: CvflError, peer_role: str, store: CheckpointStore, where: str) -> CvflError:
    """The error to end this party with: the peer's stop or loss said plainly, else ``error``."""
    if isinstance(error, PeerStoppedError):
        hint = (
            "it refused what this side sent: see both logs, fix the cause and restart both"
            if error.code.startswith("protocol.")
            else "fix it there and restart both"
        )
        return PeerStoppedError(
            f"the {peer_role} stopped: [{error.code}] {error.reason}; {hint}",
            code=error.code,
            reason=error.reason,
        )
    if isinstance(error, PeerUnavailableError):
        return PeerUnavailableError(
            f"lost the {peer_role} ({where}): {error.message}; {both_hold(store)}",
            code=error.code,
        )
    return error


def reraise(error: CvflError, peer_role: str, store: CheckpointStore, where: str) -> NoReturn:
    """Raise ``error``, or its plain explanation (see :func:`explain`) chained to it."""
    told = explain(error, peer_role, store, where)
    if told is error:
        raise error
    raise told from error


def committed_step(store: CheckpointStore) -> int:
    """The newest step whose checkpoint both parties hold (0: none), from this side's records."""
    with contextlib.suppress(CvflError, OSError):
        return max((s.step for s in store.inventory() if s.peer_digest), default=0)
    return 0


def both_hold(store: CheckpointStore) -> str:
    """``the newest checkpoint both parties hold is step N`` (or that there is none yet)."""
    step = committed_step(store)
    if step:
        return f"the newest checkpoint both parties hold is step {step}"
    return "no checkpoint both parties hold yet (a restart begins at step 0)"
