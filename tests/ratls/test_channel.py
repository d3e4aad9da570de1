"""The attest-then-pin channel over real gRPC servers on loopback.

Every refusal must happen before any application message moves (the test App counts them) and
name the failed field with the expected and the seen value on the side that refused. The refused
client hears the code and the failed field, never the server's policy values; a refused server
hears the client's full reason through a report (the server is attested to nobody by then, but the
client's policy is its own to tell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cvfl.attestation.policy import AcceptedIdentity
from cvfl.attestation.simulated import SIM_ATTRIBUTES_FLAGS, SIM_MR_SIGNER
from cvfl.errors import AttestationError
from cvfl.ratls import RatlsCredentials, make_certificate
from cvfl.ratls.cert import ATTEST_NAME, SESSION_NAME

from .helpers import (
    FLAG_DEBUG,
    MR_ENCLAVE,
    OTHER_MEASUREMENT,
    CraftedProvider,
    PlatformVerifier,
    echo,
    past,
    policy,
    security,
    serve,
    terms,
)

GOOD = CraftedProvider(isv_svn=2)
STRICT_ID = AcceptedIdentity(
    mr_enclave=MR_ENCLAVE, mr_signer=SIM_MR_SIGNER, isv_prod_id=0, min_isv_svn=2
)
TIMEOUT = 5.0


def base_policy(**changes: Any) -> Any:
    return policy(identities=(STRICT_ID,), **changes)


@dataclass
class Case:
    """One refusal: how the bad party differs, how the checking party differs, what to expect.

    ``public`` is what the refused client may hear (the field; no policy values).
    """

    bad: dict[str, Any] = field(default_factory=dict)
    checker: dict[str, Any] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    public: tuple[str, ...] = ()


def _expired() -> RatlsCredentials:
    return make_certificate(GOOD, valid_for=past(0) - past(1 / 60), now=past(2))


CASES = {
    "mr_enclave": Case(
        bad={"provider": GOOD.variant(mr_enclave=OTHER_MEASUREMENT)},
        expect=("mr_enclave", MR_ENCLAVE.hex(), OTHER_MEASUREMENT.hex()),
        public=("attestation.policy_identity", "enclave identity"),
    ),
    "mr_signer": Case(
        bad={"provider": GOOD.variant(mr_signer=OTHER_MEASUREMENT)},
        expect=("mr_signer", SIM_MR_SIGNER.hex(), OTHER_MEASUREMENT.hex()),
        public=("attestation.policy_identity",),
    ),
    "isv_svn": Case(
        bad={"provider": GOOD.variant(isv_svn=1)},
        expect=("isv_svn", "at least 2", "seen 1"),
        public=("attestation.policy_identity",),
    ),
    "isv_prod_id": Case(
        bad={"provider": GOOD.variant(isv_prod_id=9)},
        expect=("isv_prod_id", "expected 0", "seen 9"),
        public=("attestation.policy_identity",),
    ),
    "debug": Case(
        bad={"provider": GOOD.variant(flags=SIM_ATTRIBUTES_FLAGS | FLAG_DEBUG)},
        expect=("debug", "expected false", "seen true"),
        public=("attestation.policy_debug", "debug enclaves"),
    ),
    "tcb_status": Case(
        checker={"verifier": PlatformVerifier("OutOfDate")},
        expect=("tcb_status", "expected UpToDate", "seen OutOfDate"),
        public=("attestation.policy_tcb_status", "TCB status"),
    ),
    "simulated_forbidden": Case(
        checker={"pol": base_policy(allow_simulated=False)},
        expect=("simulated", "expected false", "seen true"),
        public=("attestation.policy_simulated",),
    ),
    "other_key": Case(
        bad={"provider": GOOD.variant(bind_to=bytes(range(64)))},
        expect=("report_data", "expected", "seen " + bytes(range(32)).hex()),
        public=("ratls.key_binding",),
    ),
    "expired": Case(
        bad={"credentials": _expired()},
        expect=("certificate validity", "expected not after", "seen"),
        public=("ratls.validity",),
    ),
}


def _party(mods: dict[str, Any], role: str = "leader") -> Any:
    mods = {"provider": GOOD, "pol": base_policy(), "role": role, **mods}
    return security(**mods)


def _client(mods: dict[str, Any]) -> Any:
    return _party(mods, role="follower")


def _assert_names(message: str, expect: tuple[str, ...]) -> None:
    for part in expect:
        assert part in message, f"{part!r} not in {message!r}"


def test_full_mutual_handshake_then_traffic() -> None:
    with serve(_party({})) as srv:
        client = _client({})
        connection = client.connect(srv.target, TIMEOUT)
        channel = connection.channel
        assert connection.peer.terms is not None and connection.peer.terms.role == "leader"
        try:
            assert echo(channel, b"step 1") == b"step 1"
        finally:
            channel.close()
        assert srv.app.messages == 1
        assert srv.sec.refusals == []
        assert len(srv.sec.pins) == 1
        assert srv.app.peers[0].startswith(f"attested peer mr_enclave={MR_ENCLAVE.hex()[:16]}")
        assert srv.app.peers[0].endswith("SIMULATED — INSECURE")


@pytest.mark.parametrize("name", sorted(CASES))
def test_server_evidence_refused_by_client(name: str) -> None:
    case = CASES[name]
    with serve(_party(case.bad)) as srv:
        client = _client(case.checker)
        with pytest.raises(AttestationError) as info:
            client.connect(srv.target, TIMEOUT)
        assert info.value.message.startswith(f"server {srv.target}: ")
        _assert_names(info.value.message, case.expect)
        assert srv.app.messages == 0
        assert len(srv.sec.pins) == 0
        if name != "expired":  # TLS itself will not carry a report to an expired certificate
            _assert_names(srv.sec.peer_refusals[-1], case.expect)


@pytest.mark.parametrize("name", sorted(CASES))
def test_client_evidence_refused_by_server(name: str) -> None:
    case = CASES[name]
    with serve(_party(case.checker)) as srv:
        client = _client(case.bad)
        with pytest.raises(AttestationError) as info:
            client.connect(srv.target, TIMEOUT)
        assert "refused us" in info.value.message
        _assert_names(info.value.message, case.public)
        policy_value = case.expect[1]  # what the server's policy expected stays its own
        if policy_value not in ("expected", "seen"):
            assert policy_value not in info.value.message
        _assert_names(srv.sec.refusals[-1].message, case.expect)
        assert srv.app.messages == 0
        assert len(srv.sec.pins) == 0


def _thief_credentials(victim: RatlsCredentials) -> RatlsCredentials:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return RatlsCredentials(
        cert_pem=victim.cert_pem,
        key_pem=pem,
        cert_der=victim.cert_der,
        not_before=victim.not_before,
        not_after=victim.not_after,
        private_key=key,
    )


def test_replayed_certificate_without_key_is_refused() -> None:
    with serve(_party({})) as srv:
        victim = make_certificate(GOOD, terms=terms("follower"))
        thief = _client({"credentials": _thief_credentials(victim)})
        with pytest.raises(AttestationError) as info:
            thief.connect(srv.target, TIMEOUT)
        expect = ("proof of possession", "expected a signature", "seen an invalid signature")
        _assert_names(info.value.message, ("ratls.possession", "proof of possession"))
        _assert_names(srv.sec.refusals[-1].message, expect)
        assert len(srv.sec.pins) == 0 and srv.app.messages == 0


def test_replay_straight_to_mutual_tls_gets_nowhere() -> None:
    with serve(_party({})) as srv:
        victim_sec = _client({})
        victim_sec.connect(srv.target, TIMEOUT).channel.close()  # pins the victim's cert
        thief = _thief_credentials(victim_sec.identity.current())
        server_pem = srv.sec.identity.current().cert_pem
        creds = grpc.ssl_channel_credentials(server_pem, thief.key_pem, thief.cert_pem)
        options = [("grpc.ssl_target_name_override", SESSION_NAME)]
        with (
            grpc.secure_channel(srv.target, creds, options) as channel,
            pytest.raises(grpc.RpcError),
        ):
            echo(channel, timeout=2.0)
        assert srv.app.messages == 0


def test_no_client_certificate_gets_nowhere_on_either_route() -> None:
    with serve(_party({})) as srv:
        server_pem = srv.sec.identity.current().cert_pem
        creds = grpc.ssl_channel_credentials(server_pem)
        attest_route = [("grpc.ssl_target_name_override", ATTEST_NAME)]
        with (
            grpc.secure_channel(srv.target, creds, attest_route) as channel,
            pytest.raises(grpc.RpcError) as info,
        ):
            echo(channel)  # the attest endpoint serves Attest and Report, nothing else
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        session_route = [("grpc.ssl_target_name_override", SESSION_NAME)]
        with (
            grpc.secure_channel(srv.target, creds, session_route) as channel,
            pytest.raises(grpc.RpcError) as info,
        ):
            echo(channel, timeout=2.0)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert srv.app.messages == 0


def test_attested_but_unpinned_certificate_is_refused_at_mutual_tls() -> None:
    with serve(_party({})) as srv:
        stranger = make_certificate(GOOD, terms=terms("follower"))  # never went through Attest
        server_pem = srv.sec.identity.current().cert_pem
        creds = grpc.ssl_channel_credentials(server_pem, stranger.key_pem, stranger.cert_pem)
        options = [("grpc.ssl_target_name_override", SESSION_NAME)]
        with (
            grpc.secure_channel(srv.target, creds, options) as channel,
            pytest.raises(grpc.RpcError),
        ):
            echo(channel, timeout=2.0)
        assert srv.app.messages == 0
