"""Job terms on the channel: refused before any application message moves, naming the field.

Each party binds its terms (SHA-256 in report_data[32:64]) into its evidence; the other side
checks them against its own job and its policy's ``[attestation.policy.peer]`` requirements.
"""

from __future__ import annotations

import datetime as dt
from concurrent import futures
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cvfl.attestation.policy import AcceptedIdentity
from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.attestation.terms import PeerRequirements
from cvfl.bridge.security import SERVER_OPTIONS
from cvfl.errors import AttestationError, ConfigError
from cvfl.ratls import make_certificate, verify_certificate
from cvfl.ratls.cert import TERMS_OID

from .helpers import (
    MR_ENCLAVE,
    OTHER_MEASUREMENT,
    CraftedProvider,
    echo,
    policy,
    security,
    serve,
    terms,
)

TIMEOUT = 5.0
GRAMINE_ONLY = PeerRequirements(sealing=frozenset({"gramine"}))
ECDH_ONLY = PeerRequirements(psi_modes=frozenset({"ecdh"}))

CASES: dict[str, tuple[dict[str, Any], PeerRequirements, tuple[str, ...]]] = {
    "plaintext_outputs": (
        {"plaintext_outputs": True, "sealing": "none"},
        PeerRequirements(),
        ("plaintext_outputs: expected false, seen true", "sealing"),
    ),
    "file_key_where_gramine_required": (
        {"sealing": "file"},
        GRAMINE_ONLY,
        ("sealing: expected gramine, seen file",),
    ),
    "mrsigner_key_where_gramine_required": (
        {"sealing": "gramine-mrsigner"},
        GRAMINE_ONLY,
        ("sealing: expected gramine, seen gramine-mrsigner",),
    ),
    "fast_psi_not_allowed": (
        {"psi_mode": "fast"},
        ECDH_ONLY,
        ("psi_mode: expected ecdh, seen fast",),
    ),
}
CASES["policy_digest_not_pinned"] = (
    {"policy_digest": "cd" * 32},
    PeerRequirements(policy_digests=frozenset({"ab" * 32})),
    ("policy_digest: expected " + "ab" * 32 + ", seen " + "cd" * 32,),
)
# Fields both sides check the same way: whichever side looks first refuses (the client does).
SYMMETRIC = {
    "another_job": ({"job_id": "other-job"}, PeerRequirements(), ("job_id",)),
    "another_command": ({"command": "align"}, PeerRequirements(), ("command",)),
}


def _pol(requirements: PeerRequirements) -> Any:
    return policy(peer=requirements)


@pytest.mark.parametrize("name", sorted(CASES))
def test_client_terms_refused_by_the_server(name: str) -> None:
    changes, requirements, expect = CASES[name]
    with serve(security(pol=_pol(requirements))) as srv:
        client = security(role="follower", job_terms=terms("follower", **changes))
        with pytest.raises(AttestationError) as info:
            client.connect(srv.target, TIMEOUT)
        assert info.value.code == "attestation.terms"
        for field in expect:
            assert field.split(":")[0] in info.value.message  # the field, not the policy
            assert field in srv.sec.refusals[-1].message
        assert "expected gramine" not in info.value.message
        assert srv.app.messages == 0 and len(srv.sec.pins) == 0


@pytest.mark.parametrize("name", sorted(CASES | SYMMETRIC))
def test_server_terms_refused_by_the_client(name: str) -> None:
    changes, requirements, expect = (CASES | SYMMETRIC)[name]
    with serve(security(job_terms=terms("leader", **changes))) as srv:
        client = security(role="follower", pol=_pol(requirements))
        with pytest.raises(AttestationError) as info:
            client.connect(srv.target, TIMEOUT)
        assert info.value.code == "attestation.terms"
        for field in expect:
            assert field in info.value.message
        assert srv.app.messages == 0 and len(srv.sec.pins) == 0


def test_the_same_role_on_both_sides_is_refused() -> None:
    with serve(security()) as srv:
        with pytest.raises(AttestationError) as info:
            security(role="leader").connect(srv.target, TIMEOUT)
        assert "role: expected follower, seen leader" in info.value.message


def test_policy_requirements_allowing_plaintext_accept_it() -> None:
    allow = PeerRequirements(plaintext_outputs=True, sealing=frozenset({"none", "file"}))
    with serve(security(pol=_pol(allow))) as srv:
        plain = terms("follower", plaintext_outputs=True, sealing="none")
        connection = security(role="follower", job_terms=plain).connect(srv.target, TIMEOUT)
        assert echo(connection.channel) == b"hello"
        connection.channel.close()


def test_same_as_self_refuses_another_enclave_signed_by_the_same_key() -> None:
    """The peer's operator holds the signing key; only the measurement says what code runs."""
    same = policy(identities=(AcceptedIdentity(same_as_self=True),))
    with serve(security(pol=same)) as srv:
        resigned = CraftedProvider(mr_enclave=OTHER_MEASUREMENT)  # same mr_signer, other code
        with pytest.raises(AttestationError) as info:
            anything = policy(identities=(), allow_any_identity=True)  # the attacker's own
            security(resigned, pol=anything, role="follower").connect(srv.target, TIMEOUT)
        assert info.value.code == "attestation.policy_identity"
        refusal = srv.sec.refusals[-1].message
        assert f"expected {MR_ENCLAVE.hex()}, seen {OTHER_MEASUREMENT.hex()}" in refusal
        assert srv.app.messages == 0
        connection = security(pol=same, role="follower").connect(srv.target, TIMEOUT)
        assert echo(connection.channel) == b"hello"  # the very same enclave is accepted
        connection.channel.close()


def test_same_as_self_and_mr_enclave_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="same_as_self and mr_enclave"):
        AcceptedIdentity(same_as_self=True, mr_enclave=MR_ENCLAVE)


def _rekeyed(cert_der: bytes) -> bytes:
    """The same extensions (quotes, terms) in a new certificate with another key."""
    original = x509.load_der_x509_certificate(cert_der)
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=30))
    )
    for ext in original.extensions:
        if ext.oid.dotted_string not in ("2.5.29.14", "2.5.29.35"):  # key identifiers
            builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_evidence_replayed_in_a_certificate_with_another_key_is_refused() -> None:
    genuine = make_certificate(CraftedProvider(), terms=terms("follower"))
    verify_certificate(genuine.cert_der, SimulatedVerifier(), policy())
    with pytest.raises(AttestationError) as info:
        verify_certificate(_rekeyed(genuine.cert_der), SimulatedVerifier(), policy())
    assert info.value.code == "ratls.key_binding"


def test_terms_swapped_in_the_certificate_are_refused() -> None:
    """Terms the quote does not bind (an extension replaced after the quote was made)."""
    genuine = make_certificate(CraftedProvider(), terms=terms("follower"))
    cert = x509.load_der_x509_certificate(genuine.cert_der)
    other = terms("follower", plaintext_outputs=True, sealing="none").encode()
    builder = x509.CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=genuine.private_key.public_key(),
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
    )
    for ext in cert.extensions:
        value = x509.UnrecognizedExtension(TERMS_OID, other) if ext.oid == TERMS_OID else ext.value
        builder = builder.add_extension(value, ext.critical)
    swapped = builder.sign(genuine.private_key, hashes.SHA256())
    with pytest.raises(AttestationError) as info:
        verify_certificate(
            swapped.public_bytes(serialization.Encoding.DER), SimulatedVerifier(), policy()
        )
    assert info.value.code == "ratls.terms_binding"


def test_a_gramine_certificate_has_no_terms_and_is_refused_on_a_channel() -> None:
    bare = make_certificate(CraftedProvider())  # report_data[32:] zero, as Gramine's own
    verify_certificate(bare.cert_der, SimulatedVerifier(), policy())  # the evidence is fine
    with serve(security()) as srv:
        client = security(role="follower", credentials=bare)
        with pytest.raises(AttestationError) as info:
            client.connect(srv.target, TIMEOUT)
        assert info.value.code == "attestation.terms"
        assert "terms: expected attested job terms" in srv.sec.refusals[-1].message


def test_a_second_bind_on_a_port_in_use_is_refused() -> None:
    with serve(security()) as srv:
        server = grpc.server(futures.ThreadPoolExecutor(2), options=SERVER_OPTIONS)
        with pytest.raises(ConfigError) as info:
            srv.sec.bind(server, srv.target)
        server.stop(0)
        assert info.value.code == "ratls.bind" and srv.target in info.value.message
        connection = security(role="follower").connect(srv.target, TIMEOUT)
        assert echo(connection.channel) == b"hello"  # the first party still owns the port
        connection.channel.close()
