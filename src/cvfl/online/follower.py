"""The follower's side of ``cvfl serve``: answer the leader's lookups, redial after a loss.

The follower receives only example ids; it answers with which it holds and their cut-layer
activations. It never receives the leader's features or any score.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from cvfl.bridge.link import ClientLink, dial, expect
from cvfl.bridge.security import ChannelSecurity
from cvfl.bridge.serde import tensor_to_proto
from cvfl.errors import PeerUnavailableError, ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.online.party import WAIT_WARNING, ServingParty
from cvfl.serve.hello import follower_predict_handshake
from cvfl.train.config import PeerSection
from cvfl.wire import bridge_pb2 as pb

log = get_logger(__name__)

MAX_LOOKUP_IDS = 65536
POLL = 0.2
HELLO_RETRY = 2.0
DIAL_SLICE = 2.0  # each attempt may need an attestation round trip


def answer_lookup(party: ServingParty, lookup: pb.Lookup) -> pb.Envelope:
    """The activations of the asked ids this party holds, with the presence mask.

    Raises:
        ProtocolError: more ids than any batch may hold (``protocol.shape``).
    """
    if len(lookup.ids) > MAX_LOOKUP_IDS:
        raise ProtocolError(
            mismatch("ids per lookup", f"at most {MAX_LOOKUP_IDS}", len(lookup.ids)),
            code="protocol.shape",
        )
    present, rows = party.rows_of(list(lookup.ids))
    tensors = []
    if rows.size:
        act = activations(party, rows)
        tensors.append(tensor_to_proto(party.half.cut_layer[0].name, act.to(torch.float32)))
    answer = pb.Activations(batch=lookup.batch, present=present.astype("u1").tobytes())
    answer.tensors.extend(tensors)
    return pb.Envelope(activations=answer)


def activations(party: ServingParty, rows: np.ndarray) -> torch.Tensor:
    """The cut-layer activations of table rows ``rows`` (from the party's cache if it has one)."""
    if party.cache is not None:
        return torch.from_numpy(party.cache.rows(rows))
    with torch.no_grad():
        out: torch.Tensor = party.half.module(torch.from_numpy(party.table.features[rows]))
    return out


def serve_follower(
    party_of: Callable[[], ServingParty], security: ChannelSecurity, stop: threading.Event
) -> None:
    """Keep a channel to the leader and answer its lookups until ``stop`` is set.

    A lost connection is redialled (``dial`` backs off). When ``party_of()`` is a newly loaded
    half, it greets the leader on a new stream while the current stream keeps answering with
    the old half; a refused hello (the leader has not reloaded yet) is tried again every
    ``HELLO_RETRY`` seconds. Once the leader accepts the new half, the old stream answers what
    was sent on it until the leader closes it.
    """
    peer = party_of().cfg.peer.for_worker(0)
    current: _Stream | None = None
    streams: list[_Stream] = []
    reminded = time.monotonic()
    try:
        while not stop.is_set():
            _raise_any(streams)
            party = party_of()
            if current is not None and current.alive and current.party is party:
                stop.wait(POLL)
                reminded = time.monotonic()
                continue
            waiting = current if current is not None and current.alive else None
            stream = _greet(party, security, peer, stop, waiting)
            if stream is None:
                if waiting is not None and time.monotonic() - reminded >= WAIT_WARNING:
                    reminded = time.monotonic()
                    _remind(party, waiting)
                continue
            if current is not None:
                current.retired = True  # answers until the leader closes it
            current = stream
            streams = [s for s in streams if s.alive] + [stream]
    finally:
        for stream in streams:
            stream.thread.join(2 * POLL + 1.0)


def _raise_any(streams: list[_Stream]) -> None:
    for stream in streams:
        if stream.error is not None:
            raise stream.error


def _remind(party: ServingParty, waiting: _Stream) -> None:
    log.warning(
        "serve: the reloaded half %s waits for the leader to accept it; half %s still answers",
        party.short,
        waiting.party.short,
    )


def _greet(
    party: ServingParty,
    security: ChannelSecurity,
    peer: PeerSection,
    stop: threading.Event,
    waiting: _Stream | None,
) -> _Stream | None:
    """Dial the leader and greet it with ``party``'s half; the stream answering, or None.

    ``waiting`` is the stream still answering with an older half (refusals are then expected
    until the leader reloads, and logged quietly).
    """
    try:  # short attempts, so that a stop is noticed while the leader is away
        link = dial(security, peer.leader_address, DIAL_SLICE)
    except PeerUnavailableError as exc:
        log.debug("serve: %s; still trying", exc.message)
        return None
    try:
        mine = party.hello(secrets.token_bytes(32))
        follower_predict_handshake(link, mine, peer.connect_timeout)
    except PeerUnavailableError as exc:
        log.warning("serve: no hello from the leader (%s); redialling", exc.message)
        link.shutdown()
        return None
    except ProtocolError as exc:
        level = logging.DEBUG if waiting is not None else logging.ERROR
        log.log(level, "serve: the hello was refused: [%s] %s; retrying", exc.code, exc.message)
        link.shutdown()
        stop.wait(HELLO_RETRY)
        return None
    log.info("serve: connected to the leader; answering lookups (half %s)", party.short)
    return _Stream(party, link, stop)


class _Stream:
    """One accepted link, answered in a thread of its own with the half it was greeted with."""

    def __init__(self, party: ServingParty, link: ClientLink, stop: threading.Event) -> None:
        self.party = party
        self.retired = False  # replaced by a stream greeting a newer half
        self.error: ProtocolError | None = None
        self._link = link
        self._stop = stop
        self.thread = threading.Thread(target=self._run, name="cvfl-serve-answer", daemon=True)
        self.thread.start()

    @property
    def alive(self) -> bool:
        """Whether the stream still answers."""
        return self.thread.is_alive()

    def _run(self) -> None:
        try:
            _answer(self.party, self._link, self._stop)
        except PeerUnavailableError as exc:
            if self.retired:
                log.info("serve: the stream of half %s is closed", self.party.short)
            else:
                log.warning("serve: lost the leader (%s); redialling", exc.message)
        except ProtocolError as exc:  # the leader broke the protocol: the follower stops
            self.error = exc
        finally:
            self._link.shutdown()


def _answer(party: ServingParty, link: ClientLink, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            envelope = link.recv(POLL)
        except PeerUnavailableError as exc:
            if exc.code == "peer.timeout":
                continue
            raise
        try:
            expect(envelope, "lookup")
        except ProtocolError as exc:
            link.abort(exc)
            raise
        link.send(answer_lookup(party, envelope.lookup))
