"""The leader's side of the serving hello, with a reloaded half waiting beside the serving one.

While the leader holds a *staged* half (reloaded, its follower not yet greeting it), a follower
stream may greet either half: the staged one first, then the one serving. The checks are those
of ``cvfl predict``'s hello (:func:`cvfl.serve.hello.predict_mismatches`), half by half; a hello
matching neither is refused with the mismatches against each.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace

from cvfl.bridge.handshake import refuse_hello
from cvfl.bridge.link import Link, expect
from cvfl.online.party import ServingParty
from cvfl.serve.hello import PredictHello, hello_from_proto, hello_to_proto, predict_mismatches
from cvfl.wire import bridge_pb2 as pb


def greet_follower(
    link: Link, candidates: Sequence[ServingParty], timeout: float
) -> tuple[ServingParty, PredictHello]:
    """Receive the follower's hello and answer with the first candidate half it matches.

    ``candidates`` are the leader's halves in order of preference (the staged one, then the
    serving one); at least one.

    Returns:
        The half chosen and the follower's hello.

    Raises:
        ProtocolError: the hello matches none of the halves (``protocol.hello``, naming each
            field that differs) or declares other terms (``protocol.terms``); the follower is
            told with an Abort.
        PeerUnavailableError: no hello within ``timeout`` seconds.
    """
    envelope = link.recv(timeout)
    expect(envelope, "predict_hello")
    theirs = hello_from_proto(envelope.predict_hello)
    nonce = secrets.token_bytes(32)
    problems: list[str] = []
    chosen: tuple[ServingParty, PredictHello] | None = None
    for party in candidates:
        mine = party.hello(nonce)
        found = predict_mismatches(mine, theirs)
        if not found:
            chosen = party, mine
            break
        problems += _labelled(found, party, len(candidates))
    # the declared terms are checked first, whichever half matched
    refuse_hello(link, theirs.terms, [] if chosen else problems, "predict hello")
    assert chosen is not None  # refuse_hello raised: no half matched
    party, mine = chosen
    link.send(pb.Envelope(predict_hello=hello_to_proto(replace(mine, terms=link.own_terms))))
    return party, theirs


def _labelled(problems: list[str], party: ServingParty, halves: int) -> list[str]:
    """Mismatches against one half, naming it when there are several to choose from."""
    if halves == 1:
        return problems
    name = party.short
    return [f"against half {name}: {problem}" for problem in problems]
