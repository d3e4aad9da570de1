"""Enrolment over real gRPC servers on loopback, in plaintext and through attested RA-TLS.

With RA-TLS, rank 0 serves through the party's own-party security (same enclave, same terms,
same role) and every caller must prove the party key; the other party's enclave — same code,
its operator's job file — gets no key and cannot stop rank 0's group.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from cvfl.attestation.terms import JobTerms
from cvfl.bridge.security import (
    Attester,
    Binding,
    ChannelSecurity,
    Connection,
    PeerInfo,
    PlaintextSecurity,
)
from cvfl.errors import AttestationError, ConfigError, PeerUnavailableError, ProtocolError
from cvfl.ratls import RatlsSecurity
from cvfl.workers import WorkerContext
from cvfl.workers.enrol import EnrolServer, enrol, enrol_group
from cvfl.workers.serde import EnrolClaim, EnrolGrant
from tests.ratls.helpers import OTHER_MEASUREMENT, CraftedProvider, security, terms

KEY = bytes(range(32))
PARTY = bytes(range(100, 132))  # the leader's party key (derived from its sealing key)
OWN = EnrolClaim("job-1", "leader", 0, 3)
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plaintext() -> ChannelSecurity:
    return PlaintextSecurity()


def ratls() -> ChannelSecurity:
    return security().for_own_party()


SECURITIES: dict[str, Callable[[], ChannelSecurity]] = {"plaintext": plaintext, "ratls": ratls}


@contextmanager
def serving(make: Callable[[], ChannelSecurity], own: EnrolClaim = OWN) -> Iterator[EnrolServer]:
    server = EnrolServer(make(), "127.0.0.1:0", own, KEY, PARTY)
    try:
        yield server
    finally:
        server.stop(0.5)


def claim(**changes: Any) -> EnrolClaim:
    base = {"job_id": "job-1", "role": "leader", "rank": 1, "world_size": 3, **changes}
    return EnrolClaim(**base)


def target(server: EnrolServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("kind", sorted(SECURITIES))
def test_all_ranks_enrol_and_get_the_key(kind: str) -> None:
    make = SECURITIES[kind]
    with serving(make) as server, ThreadPoolExecutor(2) as pool:
        grants = list(
            pool.map(lambda r: enrol(make(), target(server), claim(rank=r), TIMEOUT, PARTY), [1, 2])
        )
        enrolled = server.wait(TIMEOUT)
    assert sorted(enrolled) == [1, 2]
    assert all(g.group_key == KEY for g in grants)
    assert "group_key=<32 bytes>" in repr(grants[0]) and KEY.hex() not in repr(grants[0])
    if kind == "ratls":
        assert all(p.startswith("attested peer mr_enclave=") for p in enrolled.values())
        assert grants[0].peer_description.startswith("attested peer")
    else:
        assert all(p.startswith("unauthenticated peer") for p in enrolled.values())


REFUSALS = [
    (claim(job_id="job-2"), "job id: expected job-1, seen job-2"),
    (claim(role="follower"), "role: expected leader, seen follower"),
    (claim(world_size=4), "world size: expected 3, seen 4"),
    (claim(rank=3), "rank: expected 1..2, seen 3"),
    (claim(rank=0), "rank: expected 1..2, seen 0"),
]


@pytest.mark.parametrize("kind", sorted(SECURITIES))
@pytest.mark.parametrize(("bad", "expect"), REFUSALS, ids=[e.split(":")[0] for _, e in REFUSALS])
def test_mismatch_refused_on_both_sides(kind: str, bad: EnrolClaim, expect: str) -> None:
    make = SECURITIES[kind]
    with serving(make) as server:
        with pytest.raises(ProtocolError) as client_err:
            enrol(make(), target(server), bad, TIMEOUT, PARTY)
        with pytest.raises(ProtocolError) as server_err:
            server.wait(TIMEOUT)
    assert client_err.value.code == server_err.value.code == "workers.enrol_refused"
    assert expect in client_err.value.message and expect in server_err.value.message
    assert "refused" in client_err.value.message
    assert server.registry.enrolled == {}


@pytest.mark.parametrize("kind", sorted(SECURITIES))
def test_rank_enrolling_twice_is_refused(kind: str) -> None:
    make = SECURITIES[kind]
    with serving(make) as server:
        first = enrol(make(), target(server), claim(rank=1), TIMEOUT, PARTY)
        assert first.group_key == KEY
        with pytest.raises(ProtocolError) as info:
            enrol(make(), target(server), claim(rank=1), TIMEOUT, PARTY)
        with pytest.raises(ProtocolError) as at_root:
            server.wait(TIMEOUT)
    expect = "rank: expected a rank not enrolled yet, seen 1 (already enrolled)"
    assert expect in info.value.message and expect in at_root.value.message


def test_unattested_worker_gets_no_key_and_root_names_the_missing_rank() -> None:
    with serving(ratls) as server:
        outsider = security(CraftedProvider(mr_enclave=OTHER_MEASUREMENT)).for_own_party()
        with pytest.raises(AttestationError) as info:
            enrol(outsider, target(server), claim(rank=1), TIMEOUT, PARTY)
        # Another enclave is not this one: the outsider's own-party check refuses rank 0 first.
        assert info.value.code == "attestation.policy_identity"
        assert "mr_enclave" in info.value.message and OTHER_MEASUREMENT.hex() in info.value.message
        enrol(ratls(), target(server), claim(rank=2), TIMEOUT, PARTY)
        with pytest.raises(PeerUnavailableError) as missing:
            server.wait(0.5)
    assert missing.value.code == "workers.enrol_timeout"
    assert "workers [1] of 3 did not enrol" in missing.value.message
    assert "enrolled: [2]" in missing.value.message


def test_unreachable_root_times_out() -> None:
    with pytest.raises(PeerUnavailableError) as info:
        enrol(plaintext(), f"127.0.0.1:{free_port()}", claim(), 1.0, PARTY)
    assert info.value.code == "workers.enrol_unreachable"


def test_enrol_group_through_ratls_agrees_one_fresh_key() -> None:
    """Every rank of a 3-worker group ends with the same key; the next run draws another."""
    keys: list[list[bytes]] = []
    for _ in range(2):
        master, enrol_port = free_port(), free_port()
        ctxs = [WorkerContext(r, 3, "127.0.0.1", master, enrol_port) for r in range(3)]
        with ThreadPoolExecutor(3) as pool:
            run = [
                pool.submit(
                    enrol_group,
                    c,
                    security(),
                    job_id="job-1",
                    role="leader",
                    timeout=TIMEOUT,
                    party_key=PARTY,
                )
                for c in ctxs
            ]
            keys.append([f.result() for f in run])
    for run_keys in keys:
        assert len(set(run_keys)) == 1 and len(run_keys[0]) == 32
    assert keys[0][0] != keys[1][0]


def test_single_worker_needs_no_network() -> None:
    class NoNetwork:
        """A ChannelSecurity that fails the test if any of its networking is used."""

        name = "none"
        terms: JobTerms | None = None
        local_certificate: bytes | None = None
        attester: Attester | None = None

        def for_own_party(self) -> ChannelSecurity:
            raise AssertionError("derived a worker security")

        def bind(self, server: grpc.Server, address: str) -> Binding:
            raise AssertionError("bound a port")

        def connect(self, target: str, timeout: float) -> Connection:
            raise AssertionError("dialled")

        def authorize(self, context: grpc.ServicerContext) -> PeerInfo:
            raise AssertionError("authorised")

    ctx = WorkerContext(0, 1, "127.0.0.1", 1, 2)
    key = enrol_group(ctx, NoNetwork(), job_id="j", role="leader", timeout=1.0, party_key=None)
    assert len(key) == 32


def test_key_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="cvfl")
    with serving(plaintext) as server:
        grants: list[EnrolGrant] = []
        threads = [
            threading.Thread(
                target=lambda r=r: grants.append(
                    enrol(plaintext(), target(server), claim(rank=r), TIMEOUT, PARTY)
                )
            )
            for r in (1, 2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        server.wait(TIMEOUT)
    text = caplog.text
    assert "rank 1 enrolled" in text and "rank 2 enrolled" in text
    assert KEY.hex() not in text and repr(KEY) not in text


def server_refusals(server: EnrolServer) -> str:
    sec = server.security
    assert isinstance(sec, RatlsSecurity)
    return " | ".join(e.message for e in sec.refusals)


def test_peer_enclave_as_follower_gets_nowhere_and_root_carries_on() -> None:
    """The other party runs the same enclave; attesting its own (follower) terms gets no key."""
    with serving(ratls) as server:
        peer = security(role="follower")  # its ordinary channel: it accepts a leader
        with pytest.raises(AttestationError) as info:
            enrol(peer, target(server), claim(rank=1), TIMEOUT, PARTY)
        assert info.value.code == "attestation.terms" and "role" in info.value.message
        assert "role: expected leader, seen follower" in server_refusals(server)
        assert server.registry.failure is None
        enrol(ratls(), target(server), claim(rank=1), TIMEOUT, PARTY)
        enrol(ratls(), target(server), claim(rank=2), TIMEOUT, PARTY)
        assert sorted(server.wait(TIMEOUT)) == [1, 2]  # the group was not stopped


def test_peer_enclave_claiming_the_leader_role_lacks_the_party_key() -> None:
    """Its operator can copy the leader's terms into its job file; not the leader's key."""
    with serving(ratls) as server:
        impostor = security(job_terms=terms("leader")).for_own_party()
        stolen_terms = impostor.terms == server.security.terms
        assert stolen_terms
        with pytest.raises(AttestationError) as info:
            enrol(impostor, target(server), claim(rank=1), TIMEOUT, bytes(32))
        assert info.value.code == "workers.enrol_proof"
        assert "party secret proof" in info.value.message
        assert server.registry.enrolled == {} and server.registry.failure is None
        enrol(ratls(), target(server), claim(rank=1), TIMEOUT, PARTY)
        enrol(ratls(), target(server), claim(rank=2), TIMEOUT, PARTY)
        assert sorted(server.wait(TIMEOUT)) == [1, 2]


@pytest.mark.parametrize("kind", sorted(SECURITIES))
def test_worker_without_the_party_secret_is_refused(kind: str) -> None:
    make = SECURITIES[kind]
    with serving(make) as server:
        with pytest.raises(AttestationError) as info:
            enrol(make(), target(server), claim(rank=1), TIMEOUT, bytes(range(32)))
        assert info.value.code == "workers.enrol_proof"
        assert server.registry.enrolled == {} and server.registry.failure is None


def test_several_workers_without_a_sealing_key_are_refused_at_start() -> None:
    ctx = WorkerContext(1, 2, "127.0.0.1", free_port(), free_port())
    with pytest.raises(ConfigError) as info:
        enrol_group(ctx, plaintext(), job_id="j", role="leader", timeout=1.0, party_key=None)
    assert info.value.code == "workers.no_party_key" and "[sealing]" in info.value.message
