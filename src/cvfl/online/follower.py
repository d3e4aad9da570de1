"""The follower's side of ``cvfl serve``: answer the leader's lookups, redial after a loss.

The follower receives only example ids; it answers with which it holds and their cut-layer
activations. It never receives the leader's features or any score.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

import numpy as np
import torch

from cvfl.bridge.link import ClientLink, dial, expect
from cvfl.bridge.security import ChannelSecurity
from cvfl.bridge.serde import tensor_to_proto
from cvfl.errors import PeerUnavailableError, ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.online.party import ServingParty
from cvfl.serve.hello import follower_predict_handshake
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
    party_of: Callable[[], ServingParty],
    security: ChannelSecurity,
    stop: threading.Event,
    redial: threading.Event,
) -> None:
    """Keep a channel to the leader and answer its lookups until ``stop`` is set.

    A lost connection is redialled (``dial`` backs off). A hello the leader refuses (another
    job, another half: one party may have reloaded before the other) is logged and tried again
    every ``HELLO_RETRY`` seconds. ``redial`` (set by a reload) ends the current link; the next
    hello declares ``party_of()``, the newly loaded half.
    """
    peer = party_of().cfg.peer.for_worker(0)
    while not stop.is_set():
        try:  # short attempts, so that a stop is noticed while the leader is away
            link = dial(security, peer.leader_address, DIAL_SLICE)
        except PeerUnavailableError as exc:
            log.debug("serve: %s; still trying", exc.message)
            continue
        party = party_of()
        redial.clear()
        try:
            mine = party.hello(secrets.token_bytes(32))
            follower_predict_handshake(link, mine, peer.connect_timeout)
        except PeerUnavailableError as exc:
            log.warning("serve: no hello from the leader (%s); redialling", exc.message)
            link.shutdown()
            continue
        except ProtocolError as exc:
            log.error("serve: the hello was refused: [%s] %s; retrying", exc.code, exc.message)
            link.shutdown()
            stop.wait(HELLO_RETRY)
            continue
        log.info("serve: connected to the leader; answering lookups")
        try:
            _answer(party, link, stop, redial)
        except PeerUnavailableError as exc:
            log.warning("serve: lost the leader (%s); redialling", exc.message)
        finally:
            link.shutdown()


def _answer(
    party: ServingParty, link: ClientLink, stop: threading.Event, redial: threading.Event
) -> None:
    while not stop.is_set() and not redial.is_set():
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
