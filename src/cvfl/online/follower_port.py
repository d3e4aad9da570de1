"""The leader's end of the serving channel: accepts the follower, asks it for activations.

The follower dials the leader's bridge port (RA-TLS as in training); a new stream after a loss
replaces the old one, and one greeting a reloaded (staged) half switches the leader to it. Each
micro-batch is one Lookup (its ids) answered by one Activations message; a late answer to an
earlier batch is skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cvfl.bridge.link import BridgeServer, Link
from cvfl.bridge.security import ChannelSecurity
from cvfl.errors import CvflError, PeerUnavailableError, ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.online.greeting import greet_follower
from cvfl.online.party import WAIT_WARNING, ServingParty
from cvfl.train.steps import single_tensor
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)


@dataclass(frozen=True)
class FollowerAnswer:
    """Which asked ids the follower holds, and their activations (rows in asked order)."""

    present: np.ndarray
    activations: torch.Tensor


def decode_answer(msg: pb.Activations, asked: int, width: int) -> FollowerAnswer:
    """Check and decode the follower's answer to a Lookup of ``asked`` ids.

    Raises:
        ProtocolError: a presence mask of another length or other bytes than 0 and 1, or a
            tensor of the wrong shape or with NaN/Inf (``protocol.*``).
    """
    mask = np.frombuffer(msg.present, dtype=np.uint8)
    if mask.size != asked or bool((mask > 1).any()):
        raise ProtocolError(
            mismatch(
                f"activations of batch {msg.batch}: present", f"{asked} bytes of 0/1", mask.size
            ),
            code="protocol.shape",
        )
    present = mask.astype(bool)
    held = int(present.sum())
    act = single_tensor(msg, held, width) if held else torch.empty((0, width))
    return FollowerAnswer(present, act)


@dataclass(frozen=True)
class Ticket:
    """A Lookup sent on ``link``: its batch number, how many ids it asked, when to give up.

    ``party`` is the leader's half the link was greeted with: the answer is scored with it,
    even if a reload has swapped in a newer half since.
    """

    link: Link
    batch: int
    asked: int
    deadline: float
    party: ServingParty


def cut_width(party: ServingParty) -> int:
    """The width of the party's cut layer (1 for a scalar)."""
    shape = party.half.cut_layer[0].shape
    return shape[0] if shape else 1


class FollowerPort:
    """Accepts (and re-accepts) the follower's stream and exchanges batches over it.

    A reload *stages* the new half while a follower is connected: batches keep going to the
    stream greeted with the serving half until a follower stream greets the staged one; then
    the new half and stream serve at once, and the old stream is closed once the batches sent
    on it are answered (or given up).
    """

    def __init__(self, party: ServingParty, security: ChannelSecurity) -> None:
        self._party = party
        self._staged: ServingParty | None = None  # reloaded, waiting for its follower half
        self._peer = party.cfg.peer.for_worker(0)
        self._server = BridgeServer(security, self._peer.listen, self._peer.port_file)
        self.port = self._server.port
        self._link: Link | None = None
        self._theirs = ""  # the follower half's fingerprint on the current link
        self._lock = threading.Lock()
        self._batch = 0
        self._last: Ticket | None = None  # the last Lookup sent
        self._settled = 0  # the batch number of the last ticket answered or given up
        self._retiring: list[tuple[Link, int]] = []  # replaced links and their last batch
        self._reminded = time.monotonic()
        self._stopped = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="cvfl-serve-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            self._remind()
            try:
                link = self._server.accept(0.2)
            except PeerUnavailableError:
                continue
            with self._lock:
                candidates = [p for p in (self._staged, self._party) if p is not None]
            try:
                party, theirs = greet_follower(link, candidates, self._peer.connect_timeout)
            except CvflError as exc:
                log.warning("serve: refused a follower stream: [%s] %s", exc.code, exc.message)
                link.close()
                continue
            if not self._take(link, party, theirs.model_fingerprint):
                link.close()  # reloaded meanwhile: the follower greets again
                continue
            log.info(
                "serve: the follower is connected (%s), half %s with follower half %s",
                link.peer,
                party.short,
                theirs.model_fingerprint[:16],
            )

    def _remind(self) -> None:
        """Every ``WAIT_WARNING`` seconds, say which staged half still waits for its follower."""
        now = time.monotonic()
        with self._lock:
            staged, party, theirs = self._staged, self._party, self._theirs
        if staged is None or now - self._reminded < WAIT_WARNING:
            return
        self._reminded = now
        log.warning(
            "serve: the reloaded half %s waits for a follower greeting it; still serving half "
            "%s with follower half %s",
            staged.short,
            party.short,
            theirs[:16] or "(none)",
        )

    @property
    def party(self) -> ServingParty:
        """The leader's serving half and table (not a staged one)."""
        return self._party

    @property
    def staged(self) -> ServingParty | None:
        """The reloaded half waiting for a follower stream that greets it, if any."""
        return self._staged

    def use(self, party: ServingParty) -> bool:
        """Serve with a newly loaded half once the follower greets it; True if serving it now.

        With a follower connected, ``party`` is staged (replacing any staged before) and the
        current half and stream keep serving. With none, ``party`` serves at once.
        """
        with self._lock:
            if self._link is not None and not self._link.closed:
                self._staged = party
                self._reminded = time.monotonic()
                return False
            self._party, self._staged = party, None
            return True

    def _take(self, link: Link, party: ServingParty, theirs: str) -> bool:
        """Make ``link``, greeted with ``party``, the follower's stream; False if stale.

        Greeted with the staged half, it switches the service to that half; greeted with the
        serving half, it replaces the stream (the follower reconnected).
        """
        with self._lock:
            if party is self._staged:
                self._party, self._staged = party, None
            elif party is not self._party:
                return False
            old, self._link, self._theirs = self._link, link, theirs
            self._retire(old)
        self.connected.set()
        return True

    def _retire(self, old: Link | None) -> None:
        """Close a replaced link, or once the batches sent on it are settled (lock held)."""
        if old is None:
            return
        last = self._last
        if last is not None and last.link is old and last.batch > self._settled:
            self._retiring.append((old, last.batch))
            log.debug("serve: the replaced stream closes once batch %d is settled", last.batch)
        else:
            old.close()

    def _settle(self, ticket: Ticket) -> None:
        """Note that ``ticket`` is answered or given up; close the links it was the last on."""
        with self._lock:
            self._settled = max(self._settled, ticket.batch)
            done = [link for link, batch in self._retiring if batch <= self._settled]
            self._retiring = [(k, b) for k, b in self._retiring if b > self._settled]
        for link in done:
            link.close()

    def ask(self, ids: Sequence[str], deadline: float) -> Ticket | None:
        """Send one batch's Lookup; None if the follower is absent (no answer to wait for).

        ``deadline`` (monotonic seconds) is when :meth:`answer` gives up waiting.

        Called from one thread at a time (the batcher); :meth:`answer` may run on another.
        """
        with self._lock:
            link, party = self._link, self._party
            if link is None or link.closed:
                return None
            self._batch += 1
            ticket = Ticket(link, self._batch, len(ids), deadline, party)
            self._last = ticket
        try:
            link.send(pb.Envelope(lookup=pb.Lookup(batch=ticket.batch, ids=list(ids))))
        except PeerUnavailableError:
            self._drop(link)
            return None
        return ticket

    def answer(self, ticket: Ticket) -> FollowerAnswer | None:
        """Wait for the answer to ``ticket``'s Lookup; None if it is late or the link broke.

        Answers to earlier (timed-out) batches are skipped; one to a batch never asked is refused
        (``protocol.step``) and the link dropped. Called in the order of the tickets.
        """
        try:
            return self._receive(ticket)
        finally:
            self._settle(ticket)

    def _receive(self, ticket: Ticket) -> FollowerAnswer | None:
        link = ticket.link
        try:
            while (left := ticket.deadline - time.monotonic()) > 0:
                envelope = link.recv(left)
                kind = envelope.WhichOneof("body")
                if kind != "activations":
                    raise ProtocolError(
                        mismatch("message from the serving follower", "activations", kind),
                        code="protocol.unexpected",
                    )
                batch = envelope.activations.batch
                if batch > ticket.batch:  # an answer to a Lookup never sent
                    raise ProtocolError(
                        mismatch("activations batch", f"at most {ticket.batch}", batch),
                        code="protocol.step",
                    )
                if batch == ticket.batch:
                    width = cut_width(ticket.party)
                    return decode_answer(envelope.activations, ticket.asked, width)
            return None
        except PeerUnavailableError as exc:
            if exc.code != "peer.timeout":
                log.warning("serve: lost the follower: %s", exc.message)
                self._drop(link)
            return None
        except CvflError as exc:
            log.warning("serve: the follower's answer is refused: [%s] %s", exc.code, exc.message)
            link.abort(exc)
            self._drop(link)
            return None

    def _drop(self, link: Link) -> None:
        with self._lock:
            if self._link is link:
                self._link = None
                self.connected.clear()
        link.close()

    def stop(self) -> None:
        """Close the follower's stream and stop listening."""
        self._stopped.set()
        self._thread.join(2.0)
        with self._lock:
            links = [self._link, *(link for link, _ in self._retiring)]
            self._link, self._retiring = None, []
        self.connected.clear()
        for link in links:
            if link is not None:
                link.close()
        self._server.stop(0.5)
