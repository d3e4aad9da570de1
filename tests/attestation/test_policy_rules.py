"""Policy decisions: every refusal names field, expected and seen; TOML parsing."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation import (
    AcceptedIdentity,
    DcapVerifier,
    EnclaveIdentity,
    FileCollateral,
    Policy,
    VerifiedEvidence,
)
from cvfl.errors import AttestationError, ConfigError

from .conftest import T_VALID

MRE = bytes.fromhex("aa" * 32)
MRS = bytes.fromhex("bb" * 32)
IDENT = EnclaveIdentity(
    mr_enclave=MRE,
    mr_signer=MRS,
    isv_prod_id=7,
    isv_svn=3,
    attributes_flags=0x05,
    xfrm=0x3,
    report_data=bytes(64),
)
GOOD = VerifiedEvidence(identity=IDENT, tcb_status="UpToDate", advisory_ids=(), simulated=False)
EXACT = AcceptedIdentity(mr_enclave=MRE, mr_signer=MRS, isv_prod_id=7, min_isv_svn=2)


def _with(**changes: object) -> VerifiedEvidence:
    ident = dataclasses.replace(IDENT, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(GOOD, identity=ident)


def _refusal(policy: Policy, evidence: VerifiedEvidence) -> AttestationError:
    with pytest.raises(AttestationError) as info:
        policy.check(evidence)
    return info.value


def test_exact_identity_accepted() -> None:
    Policy(identities=(EXACT,)).check(GOOD)
    Policy(identities=(EXACT,)).check(_with(isv_svn=2))


@pytest.mark.parametrize(
    ("evidence", "field", "expected", "seen"),
    [
        (_with(mr_enclave=bytes(32)), "mr_enclave", MRE.hex(), "00" * 32),
        (_with(mr_signer=bytes(32)), "mr_signer", MRS.hex(), "00" * 32),
        (_with(isv_svn=1), "isv_svn", "at least 2", "1"),
        (_with(isv_prod_id=8), "isv_prod_id", "7", "8"),
        (_with(attributes_flags=0x07), "debug", "false (production enclave)", "true (flags 0x07)"),
        (dataclasses.replace(GOOD, tcb_status="OutOfDate"), "tcb_status", "UpToDate", "OutOfDate"),
        (dataclasses.replace(GOOD, simulated=True), "simulated", "false", "true"),
    ],
)
def test_each_refusal_names_field_expected_seen(
    evidence: VerifiedEvidence, field: str, expected: str, seen: str
) -> None:
    error = _refusal(Policy(identities=(EXACT,)), evidence)
    assert f"{field}: expected {expected}" in error.message
    assert f"seen {seen}" in error.message
    assert error.code.startswith("attestation.policy_")


def test_allowances_by_name() -> None:
    Policy(identities=(EXACT,), allow_debug=True).check(_with(attributes_flags=0x07))
    lenient = Policy(identities=(EXACT,), allowed_tcb_statuses=frozenset({"OutOfDate"}))
    lenient.check(dataclasses.replace(GOOD, tcb_status="OutOfDate"))
    simulated = dataclasses.replace(GOOD, simulated=True, tcb_status="Simulated")
    Policy(identities=(EXACT,), allow_simulated=True).check(simulated)


def test_refused_advisory() -> None:
    evidence = dataclasses.replace(GOOD, advisory_ids=("INTEL-SA-00615",))
    error = _refusal(
        Policy(identities=(EXACT,), refused_advisories=frozenset({"INTEL-SA-00615"})), evidence
    )
    assert "advisory_ids" in error.message and "INTEL-SA-00615" in error.message


def test_empty_identity_list_refuses_unless_opted_in() -> None:
    error = _refusal(Policy(), GOOD)
    assert "identity" in error.message and MRE.hex() in error.message
    Policy(allow_any_identity=True).check(GOOD)


def test_closest_of_several_identities_is_explained() -> None:
    other = AcceptedIdentity(mr_enclave=bytes(32))
    near = AcceptedIdentity(mr_enclave=MRE, min_isv_svn=9)
    error = _refusal(Policy(identities=(other, near)), GOOD)
    assert "closest is entry 2 of 2" in error.message
    assert "isv_svn: expected at least 9, seen 3" in error.message
    Policy(identities=(other, EXACT)).check(GOOD)


def test_real_quote_strict_refused_then_allowed(collateral_path: Path, real_quote: bytes) -> None:
    evidence = DcapVerifier(FileCollateral(collateral_path)).verify(real_quote, at=T_VALID)
    ident = AcceptedIdentity(mr_enclave=evidence.identity.mr_enclave)
    error = _refusal(Policy(identities=(ident,)), evidence)
    assert "tcb_status: expected UpToDate, seen ConfigurationAndSWHardeningNeeded" in error.message
    allowed = frozenset({"UpToDate", "ConfigurationAndSWHardeningNeeded"})
    Policy(identities=(ident,), allowed_tcb_statuses=allowed).check(evidence)


POLICY_TOML = f"""
allow_debug = false
allowed_tcb_statuses = ["UpToDate", "SWHardeningNeeded"]
refused_advisories = ["INTEL-SA-00615"]
[[identities]]
mr_enclave = "{MRE.hex()}"
isv_svn = 2
[[identities]]
mr_signer = "{MRS.hex()}"
isv_prod_id = 7
"""


def test_from_toml_table() -> None:
    policy = Policy.from_toml_table(tomllib.loads(POLICY_TOML))
    assert policy.identities == (
        AcceptedIdentity(mr_enclave=MRE, min_isv_svn=2),
        AcceptedIdentity(mr_signer=MRS, isv_prod_id=7),
    )
    assert policy.allowed_tcb_statuses == {"UpToDate", "SWHardeningNeeded"}
    assert policy.refused_advisories == {"INTEL-SA-00615"}
    assert not policy.allow_simulated and not policy.allow_any_identity


@pytest.mark.parametrize(
    "table",
    [
        {"alow_debug": True},
        {"allow_debug": "yes"},
        {"allowed_tcb_statuses": ["UpToDat"]},
        {"identities": [{"mr_enclave": "abc"}]},
        {"identities": [{"isv_svn": 1}]},
        {"identities": [{"mr_enclave": MRE.hex(), "isv_svn": -1}]},
        {"identities": [{"mr_enclave": MRE.hex(), "extra": 1}]},
        {"identities": "x"},
    ],
)
def test_invalid_tables_refused(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        Policy.from_toml_table(table)
    assert "expected" in info.value.message


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["identities", "allow_debug", "allowed_tcb_statuses", "refused_advisories", "mr_enclave", "x"]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=4))
def test_random_tables_only_config_error(table: dict[str, object]) -> None:
    try:
        policy = Policy.from_toml_table(table)
    except ConfigError:
        return
    assert isinstance(policy, Policy)


def test_identity_entry_may_allow_its_own_debug_builds_only() -> None:
    other = bytes.fromhex("cc" * 32)
    debug_ok = AcceptedIdentity(mr_enclave=MRE, allow_debug=True)
    production_only = AcceptedIdentity(mr_enclave=other)
    policy = Policy(identities=(production_only, debug_ok))
    policy.check(_with(attributes_flags=0x07))  # a debug build of the entry that allows it
    policy.check(_with(mr_enclave=other))  # a production build of the other entry
    refused = _refusal(policy, _with(mr_enclave=other, attributes_flags=0x07))
    assert refused.code == "attestation.policy_debug"
    assert "debug: expected false (production enclave), seen true (flags 0x07)" in refused.message
    # Matching the debug-allowing entry on mr_enclave alone is not enough: it must match whole.
    pinned = AcceptedIdentity(mr_enclave=MRE, min_isv_svn=9, allow_debug=True)
    refused = _refusal(Policy(identities=(pinned,)), _with(attributes_flags=0x07))
    assert refused.code == "attestation.policy_debug"
    # The policy-wide switch still allows every entry's debug builds.
    Policy(identities=(production_only,), allow_debug=True).check(
        _with(mr_enclave=other, attributes_flags=0x07)
    )


def test_identity_tables_take_same_as_self_and_their_own_allow_debug() -> None:
    table = tomllib.loads(
        f'[[identities]]\nsame_as_self = true\n[[identities]]\nmr_enclave = "{"cc" * 32}"\n'
        "allow_debug = true\n"
    )
    policy = Policy.from_toml_table(table)
    assert policy.identities[0].same_as_self and policy.identities[1].allow_debug
    resolved = policy.for_self(IDENT)
    resolved.check(GOOD)  # same_as_self became this party's own mr_enclave
    debug = _with(attributes_flags=0x07)
    assert _refusal(resolved, debug).code == "attestation.policy_debug"  # not that entry's
    resolved.check(_with(mr_enclave=bytes.fromhex("cc" * 32), attributes_flags=0x07))
    with pytest.raises(ConfigError, match="allow_debug"):
        Policy.from_toml_table({"identities": [{"mr_enclave": "aa" * 32, "allow_debug": "yes"}]})
    assert (
        policy.digest() != Policy.from_toml_table({"identities": [{"same_as_self": True}]}).digest()
    )
    assert _refusal(policy, GOOD).code == "attestation.policy_identity"  # unresolved: nobody
