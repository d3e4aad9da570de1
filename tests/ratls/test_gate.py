"""The server-side gate: garbage offers are refused cleanly; expired pins stop authorizing."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.bridge.security import PeerInfo
from cvfl.errors import AttestationError
from cvfl.ratls.gate import Gatekeeper, Judge, LocalIdentity, Pin, PinStore
from cvfl.ratls.serde import AttestOffer

from .helpers import CraftedProvider, policy, terms

JUDGE = Judge(SimulatedVerifier(), policy(), terms("leader"), "follower")
GATE = Gatekeeper(LocalIdentity(CraftedProvider(), terms=terms("leader")), JUDGE, PinStore())


def test_report_is_truncated_before_it_is_inspected() -> None:
    gate = Gatekeeper(GATE.identity, JUDGE, PinStore())
    gate.note_peer_refusal("c" * 10_000, "\x00" * 5_000_000)
    assert len(gate.peer_refusals[-1]) < 1000
    assert "\x00" not in gate.peer_refusals[-1]


@settings(max_examples=60, deadline=None)
@given(cert=st.binary(max_size=2000), sig=st.binary(max_size=120), version=st.integers(0, 3))
def test_garbage_offers_are_refused(cert: bytes, sig: bytes, version: int) -> None:
    with pytest.raises(AttestationError):
        GATE.admit(AttestOffer(cert, sig, version), b"server")
    assert len(GATE.pins) == 0


def test_expired_pin_no_longer_authorizes() -> None:
    store = PinStore(max_pins=2)
    gate = Gatekeeper(GATE.identity, JUDGE, store)
    cert = GATE.identity.current()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    store.add(Pin("ab" * 32, cert.cert_pem, soon, PeerInfo("peer")))
    assert store.get("ab" * 32) is not None
    old = dt.datetime.now(dt.UTC) - dt.timedelta(1)
    store.add(Pin("cd" * 32, cert.cert_pem, old, PeerInfo("old")))
    assert store.get("cd" * 32) is None  # expired pins drop out
    with pytest.raises(AttestationError, match="unpinned or expired"):
        gate.authorize_pem(cert.cert_pem)  # its fingerprint was never pinned
    with pytest.raises(AttestationError, match="seen none"):
        gate.authorize_pem(None)
