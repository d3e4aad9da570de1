"""Job terms: one canonical encoding, strict decoding, and the peer requirements."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation.jobterms import sealing_kind
from cvfl.attestation.terms import (
    COMMANDS,
    PSI_MODES,
    SEALING_KINDS,
    JobTerms,
    PeerRequirements,
    TermsError,
    check_peer_terms,
    declared_terms_problems,
    decode_terms,
)
from cvfl.errors import AttestationError, ConfigError
from cvfl.ratls.gate import LogBudget
from cvfl.roles import ROLES
from cvfl.sealing import SealingConfig

DIGEST = "ab" * 32

terms_strategy = st.builds(
    JobTerms,
    job_id=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=40,
    ).filter(str.isprintable),
    role=st.sampled_from(ROLES),
    command=st.sampled_from(COMMANDS),
    sealing=st.sampled_from(SEALING_KINDS),
    plaintext_outputs=st.booleans(),
    psi_mode=st.sampled_from(PSI_MODES),
    policy_digest=st.just(DIGEST),
)


@settings(max_examples=200, deadline=None)
@given(terms_strategy)
def test_terms_round_trip_through_their_one_encoding(terms: JobTerms) -> None:
    encoded = terms.encode()
    assert decode_terms(encoded) == terms
    assert encoded == json.dumps(asdict(terms), sort_keys=True, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_decode_or_are_refused_as_attestation_errors(data: bytes) -> None:
    with contextlib.suppress(AttestationError):
        decode_terms(data)


@settings(max_examples=200, deadline=None)
@given(terms_strategy, st.integers(0, 400), st.integers(0, 255))
def test_mutated_terms_decode_to_other_terms_or_are_refused(
    terms: JobTerms, position: int, value: int
) -> None:
    data = bytearray(terms.encode())
    data[position % len(data)] = value
    try:
        decoded = decode_terms(bytes(data))
    except AttestationError:
        return
    assert decoded.encode() == bytes(data)


def test_non_canonical_forms_are_refused() -> None:
    terms = JobTerms("j", "leader", "train", "file", False, "ecdh", DIGEST)
    doc = asdict(terms)
    spaced = json.dumps(doc, sort_keys=True).encode()
    unsorted = json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")).encode()
    for data in (spaced, unsorted):
        with pytest.raises(AttestationError, match="canonical"):
            decode_terms(data)
    with pytest.raises(AttestationError, match="keys"):
        decode_terms(
            json.dumps({**doc, "extra": 1}, sort_keys=True, separators=(",", ":")).encode()
        )
    with pytest.raises(AttestationError, match="plaintext_outputs"):
        decode_terms(
            json.dumps(
                {**doc, "plaintext_outputs": "false"}, sort_keys=True, separators=(",", ":")
            ).encode()
        )
    with pytest.raises(AttestationError, match="size"):
        decode_terms(b"x" * 5000)


def test_bad_local_terms_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        JobTerms("j", "leader", "dance", "vault", False, "ecdh", "nothex")
    for field in ("command", "sealing", "policy_digest"):
        assert field in info.value.message


def test_requirements_name_every_broken_field() -> None:
    own = JobTerms("j", "leader", "train", "gramine", False, "ecdh", DIGEST)
    peer = JobTerms("j", "follower", "train", "file", True, "fast", "cd" * 32)
    strict = PeerRequirements(
        sealing=frozenset({"gramine"}),
        psi_modes=frozenset({"ecdh"}),
        policy_digests=frozenset({DIGEST}),
    )
    with pytest.raises(TermsError) as info:
        check_peer_terms(own, peer, strict, peer_role="follower")
    assert info.value.fields == ("sealing", "plaintext_outputs", "psi_mode", "policy_digest")
    check_peer_terms(
        own,
        replace(
            peer, sealing="gramine", plaintext_outputs=False, psi_mode="ecdh", policy_digest=DIGEST
        ),
        strict,
        peer_role="follower",
    )
    with pytest.raises(TermsError, match="terms: expected attested job terms"):
        check_peer_terms(own, None, strict, peer_role="follower")


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"sealing": "gramine"}, "non-empty array"),
        ({"sealing": ["vault"]}, "names from"),
        ({"plaintext_outputs": "false"}, "true or false"),
        ({"psi_modes": []}, "non-empty array"),
        ({"policy_digests": ["abc"]}, "64 lowercase hex"),
        ({"sealling": ["gramine"]}, "keys"),
    ],
)
def test_requirement_tables_are_validated(table: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        PeerRequirements.from_toml_table(table)


def test_declared_terms_are_compared_with_the_attested_ones() -> None:
    attested = JobTerms("j", "follower", "train", "file", False, "ecdh", DIGEST)
    assert declared_terms_problems(None, b"") == []  # plaintext channel: nothing attested
    assert declared_terms_problems(attested, attested.encode()) == []
    swapped = replace(attested, plaintext_outputs=True).encode()
    assert declared_terms_problems(attested, swapped) == [
        "plaintext_outputs: expected False, seen True"
    ]
    assert "unreadable" in declared_terms_problems(attested, b"{}")[0]


def test_a_gramine_key_from_another_folder_counts_as_a_file_key(tmp_path: Path) -> None:
    assert sealing_kind(None) == "none"
    assert sealing_kind(SealingConfig(provider="gramine")) == "gramine"
    assert sealing_kind(SealingConfig(provider="gramine", gramine_key="mrsigner")) == (
        "gramine-mrsigner"
    )
    assert sealing_kind(SealingConfig(provider="gramine", gramine_root=tmp_path)) == "file"
    assert sealing_kind(SealingConfig(provider="env", key_env="K")) == "env"


def test_log_budget_allows_a_burst_then_counts_what_it_suppressed() -> None:
    budget = LogBudget(burst=3, per_second=0.0)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert budget.reset_suppressed() == 2 and budget.reset_suppressed() == 0
