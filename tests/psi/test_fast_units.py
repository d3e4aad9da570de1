"""Fast mode's pieces: keyed hash, key agreement, share signatures, the evidence gate, config."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.attestation import DcapVerifier, FileCollateral
from cvfl.attestation.evidence import VerifiedEvidence
from cvfl.attestation.simulated import SimulatedVerifier
from cvfl.errors import AlignmentError, ConfigError
from cvfl.psi import PsiConfig, serde
from cvfl.psi.fast.gate import FastGate, fast_evidence_problems, gate_for
from cvfl.psi.fast.key import KeyExchange, hello_bytes, session_transcript, share_transcript
from cvfl.psi.keyed import KeyedHasher
from cvfl.ratls import RatlsSecurity
from tests.ratls.helpers import CraftedProvider, PlatformVerifier, policy, terms

TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "sgx"
T_VALID = 1750334171  # inside the real quote's collateral window (testdata README)

HELLOS = (
    serde.PsiHello("job", "leader", 0, "fast", 4096),
    serde.PsiHello("job", "follower", 0, "fast", 4096),
)


@given(st.binary(min_size=1, max_size=64), st.lists(st.binary(max_size=300), max_size=20))
def test_keyed_hash_is_hmac_sha256(key: bytes, items: list[bytes]) -> None:
    expected = b"".join(hmac.new(key, item, hashlib.sha256).digest() for item in items)
    assert KeyedHasher(key).tags(items) == expected


def test_secrets_refuse_pickling_and_printing() -> None:
    for secret in (KeyExchange(), KeyedHasher(b"k" * 32)):
        with pytest.raises(TypeError):
            pickle.dumps(secret)
        assert "<secret>" in repr(secret)


def _agree(hellos: tuple[serde.PsiHello, serde.PsiHello]) -> tuple[bytes, bytes]:
    a, b = KeyExchange(), KeyExchange()
    shares = (serde.KeyShare(a.public_key, b"", b""), serde.KeyShare(b.public_key, b"", b""))
    t = session_transcript(hellos, shares)
    return a.derive(b.public_key, t).tags([b"x"]), b.derive(a.public_key, t).tags([b"x"])


def test_both_sides_derive_the_same_fresh_key() -> None:
    first = _agree(HELLOS)
    assert first[0] == first[1]
    again = _agree(HELLOS)
    assert again[0] == again[1] and again[0] != first[0]  # fresh per run


@given(
    st.builds(
        serde.PsiHello,
        st.text(max_size=8),
        st.sampled_from(["leader", "follower"]),
        st.integers(0, 2**64 - 1),
        st.text(max_size=6),
        st.integers(0, 2**32 - 1),
        st.text(max_size=4),
        st.integers(0, 2**32 - 1),
    ),
    st.builds(
        serde.PsiHello,
        st.text(max_size=8),
        st.sampled_from(["leader", "follower"]),
        st.integers(0, 2**64 - 1),
        st.text(max_size=6),
        st.integers(0, 2**32 - 1),
        st.text(max_size=4),
        st.integers(0, 2**32 - 1),
    ),
)
def test_hello_encoding_is_injective(a: serde.PsiHello, b: serde.PsiHello) -> None:
    assert (hello_bytes(a) == hello_bytes(b)) == (a == b)


@given(st.binary(max_size=40), st.binary(max_size=400), st.binary(max_size=120))
def test_key_share_frame_round_trip(public: bytes, cert: bytes, sig: bytes) -> None:
    share = serde.KeyShare(public, cert, sig)
    frame = serde.key_share_to_proto(share)
    parsed = type(frame).FromString(frame.SerializeToString())
    assert serde.key_share_from_proto(parsed.key) == share


def _gate(provider: CraftedProvider, verifier: object, **cfg: object) -> FastGate:
    job = terms("leader", job_id="job-1", command="align", psi_mode="fast")
    security = RatlsSecurity(provider, verifier, policy(), terms=job)  # type: ignore[arg-type]
    base = PsiConfig(output=Path("/x.parquet"), mode="fast")
    return gate_for(security, dataclasses.replace(base, **cfg))  # type: ignore[arg-type]


def test_share_signature_binds_both_hellos() -> None:
    signer = _gate(CraftedProvider(simulated=False, name="sgx"), PlatformVerifier("UpToDate"))
    checker = _gate(CraftedProvider(simulated=False, name="sgx"), PlatformVerifier("UpToDate"))
    assert signer.attested is not None
    unsigned = serde.KeyShare(KeyExchange().public_key, signer.attested.certificate, b"")
    transcript = share_transcript("leader", HELLOS, unsigned)
    share = signer.own_share(unsigned.public_key, transcript)
    checker.check_peer(share, transcript)
    assert checker.peer is not None and checker.peer.tcb_status == "UpToDate"
    other = (HELLOS[0], serde.PsiHello("other-job", "follower", 0, "fast", 4096))
    with pytest.raises(AlignmentError) as err:
        checker.check_peer(share, share_transcript("leader", other, unsigned))
    assert err.value.code == "psi.bad_key_share" and "an invalid signature" in err.value.message
    forged = serde.KeyShare(KeyExchange().public_key, share.certificate, share.signature)
    with pytest.raises(AlignmentError):
        checker.check_peer(forged, share_transcript("leader", HELLOS, forged))


def test_peer_certificate_failing_the_channel_policy_is_refused() -> None:
    signer = _gate(CraftedProvider(mr_enclave=b"\x07" * 32), SimulatedVerifier())
    checker = _gate(CraftedProvider(simulated=False, name="sgx"), SimulatedVerifier())
    assert signer.attested is not None
    unsigned = serde.KeyShare(KeyExchange().public_key, signer.attested.certificate, b"")
    transcript = share_transcript("leader", HELLOS, unsigned)
    with pytest.raises(AlignmentError) as err:
        checker.check_peer(signer.own_share(unsigned.public_key, transcript), transcript)
    assert err.value.code == "psi.fast_refused" and "mr_enclave" in err.value.message


def test_missing_peer_certificate_refused_without_the_flag() -> None:
    gate = _gate(CraftedProvider(simulated=False, name="sgx"), PlatformVerifier("UpToDate"))
    with pytest.raises(AlignmentError, match="peer key share certificate: expected an attested"):
        gate.check_peer(serde.KeyShare(KeyExchange().public_key, b"", b""), b"t")


def _vector(name: str) -> Path:
    path = TESTDATA / name
    if not path.is_file():
        pytest.skip(f"test vector {path} is absent (../shared/testdata is not checked out here)")
    return path


def test_real_dcap_evidence_through_the_fast_mode_check() -> None:
    """The production check on evidence from a real Intel quote (ConfigurationAndSWHardening)."""
    quote = _vector("dcap_quote_v3.bin").read_bytes()
    verifier = DcapVerifier(FileCollateral(_vector("dcap_quote_v3_collateral.json")))
    evidence = verifier.verify(quote, at=T_VALID)
    assert not evidence.simulated
    assert fast_evidence_problems(evidence, frozenset({"UpToDate"})) == [
        "peer tcb_status: expected UpToDate, seen ConfigurationAndSWHardeningNeeded"
    ]
    listed = frozenset({"UpToDate", "ConfigurationAndSWHardeningNeeded"})
    assert fast_evidence_problems(evidence, listed) == []


def test_evidence_problems_name_every_failure() -> None:
    base = SimulatedVerifier().verify(CraftedProvider(flags=0x07).quote(bytes(64)))
    assert base.simulated and base.identity.debug
    problems = fast_evidence_problems(base, frozenset({"UpToDate"}))
    assert problems == [
        "peer evidence simulated: expected false (real SGX), seen true",
        "peer enclave debug: expected false (production enclave), seen true",
        "peer tcb_status: expected UpToDate, seen Simulated",
    ]
    identity = dataclasses.replace(base.identity, attributes_flags=0x05)
    good = VerifiedEvidence(identity, "UpToDate", (), simulated=False)
    assert fast_evidence_problems(good, frozenset({"UpToDate"})) == []


def test_fast_config_keys() -> None:
    cfg = PsiConfig.from_toml_table(
        {
            "output": "a.parquet",
            "mode": "fast",
            "insecure_fast_mode": True,
            "fast_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
        }
    )
    assert cfg.mode == "fast" and cfg.insecure_fast_mode
    assert cfg.fast_tcb_statuses == ("UpToDate", "SWHardeningNeeded")
    assert PsiConfig.from_toml_table({"output": "a.csv"}).fast_tcb_statuses == ("UpToDate",)
    with pytest.raises(
        ConfigError, match=r"\[psi\] fast_tcb_statuses: expected a non-empty subset"
    ):
        PsiConfig.from_toml_table({"output": "a.csv", "fast_tcb_statuses": ["Fine"]})
    with pytest.raises(ConfigError, match=r"\[psi\] fast_tcb_statuses: expected a list of strings"):
        PsiConfig.from_toml_table({"output": "a.csv", "fast_tcb_statuses": "UpToDate"})
    with pytest.raises(ConfigError, match=r"\[psi\] insecure_fast_mode: expected true or false"):
        PsiConfig.from_toml_table({"output": "a.csv", "insecure_fast_mode": "yes"})


def test_share_certificate_must_be_the_streams_client_certificate() -> None:
    signer = _gate(CraftedProvider(simulated=False, name="sgx"), PlatformVerifier("UpToDate"))
    other = _gate(CraftedProvider(simulated=False, name="sgx"), PlatformVerifier("UpToDate"))
    checker = _gate(CraftedProvider(simulated=False, name="sgx"), PlatformVerifier("UpToDate"))
    assert signer.attested is not None and other.attested is not None
    unsigned = serde.KeyShare(KeyExchange().public_key, signer.attested.certificate, b"")
    transcript = share_transcript("follower", HELLOS, unsigned)
    share = signer.own_share(unsigned.public_key, transcript)
    checker.check_peer(share, transcript, channel_peer=signer.attested.certificate)
    checker.insecure = True  # the binding is never waived
    with pytest.raises(AlignmentError) as err:
        checker.check_peer(share, transcript, channel_peer=other.attested.certificate)
    assert err.value.code == "psi.fast_refused"
    assert "expected the stream's mutual-TLS client certificate sha256=" in err.value.message
