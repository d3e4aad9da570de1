"""The leader's end of the serving channel: accepts the follower, asks it for activations.

The follower dials the leader's bridge port (RA-TLS as in training); a new stream after a loss
replaces the old one. Each micro-batch is one Lookup (its ids) answered by one Activations
message; a late answer to an earlier batch is skipped.
"""

from __future__ import annotations

import secrets
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
from cvfl.online.party import ServingParty
from cvfl.serve.hello import leader_predict_handshake
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
    """Accepts (and re-accepts) the follower's stream and exchanges batches over it."""

    def __init__(self, party: ServingParty, security: ChannelSecurity) -> None:
        self._party = party
        self._peer = party.cfg.peer.for_worker(0)
        self._server = BridgeServer(security, self._peer.listen, self._peer.port_file)
        self.port = self._server.port
        self._link: Link | None = None
        self._greeted = party  # the half the current link was greeted with
        self._lock = threading.Lock()
        self._batch = 0
        self._stopped = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="cvfl-serve-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                link = self._server.accept(0.2)
            except PeerUnavailableError:
                continue
            party = self._party
            try:
                nonce = secrets.token_bytes(32)
                leader_predict_handshake(link, party.hello(nonce), self._peer.connect_timeout)
            except CvflError as exc:
                log.warning("serve: refused a follower stream: [%s] %s", exc.code, exc.message)
                link.close()
                continue
            if party is not self._party:  # reloaded meanwhile: greet again with the new half
                link.close()
                continue
            self._replace(link, party)
            log.info("serve: the follower is connected (%s)", link.peer)

    @property
    def party(self) -> ServingParty:
        """The leader's current half and table."""
        return self._party

    def use(self, party: ServingParty) -> None:
        """Serve with a newly loaded half: the follower must greet it anew (its link is closed)."""
        with self._lock:
            self._party = party
        self._replace(None, party)

    def _replace(self, link: Link | None, party: ServingParty) -> None:
        with self._lock:
            old, self._link = self._link, link
            self._greeted = party
        if old is not None and old is not link:
            old.close()
        if link is None:
            self.connected.clear()
        else:
            self.connected.set()

    def ask(self, ids: Sequence[str], deadline: float) -> Ticket | None:
        """Send one batch's Lookup; None if the follower is absent (no answer to wait for).

        ``deadline`` (monotonic seconds) is when :meth:`answer` gives up waiting.

        Called from one thread at a time (the batcher); :meth:`answer` may run on another.
        """
        with self._lock:
            link, party = self._link, self._greeted
        if link is None or link.closed:
            return None
        self._batch += 1
        ticket = Ticket(link, self._batch, len(ids), deadline, party)
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
        self._replace(None, self._party)
        self._thread.join(2.0)
        self._server.stop(0.5)
