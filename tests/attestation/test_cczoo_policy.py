"""CCZoo dynamic_config.json import."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation import (
    AcceptedIdentity,
    EnclaveIdentity,
    VerifiedEvidence,
    load_cczoo_json,
)
from cvfl.attestation.cczoo import policy_from_cczoo
from cvfl.errors import AttestationError, ConfigError

MRE = "aa" * 32
MRS = "bb" * 32


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "dynamic_config.json"
    path.write_text(json.dumps(doc))
    return path


def _doc(**flags: str) -> dict[str, object]:
    doc: dict[str, object] = {
        "verify_mr_enclave": "on",
        "verify_mr_signer": "on",
        "verify_isv_prod_id": "on",
        "verify_isv_svn": "on",
        "sgx_mrs": [{"mr_enclave": MRE, "mr_signer": MRS, "isv_prod_id": "0", "isv_svn": "3"}],
    }
    doc.update(flags)
    return doc


def test_all_flags_on(tmp_path: Path) -> None:
    policy = load_cczoo_json(_write(tmp_path, _doc()))
    assert policy.identities == (
        AcceptedIdentity(
            mr_enclave=bytes.fromhex(MRE),
            mr_signer=bytes.fromhex(MRS),
            isv_prod_id=0,
            min_isv_svn=3,
        ),
    )
    assert not policy.allow_debug and policy.allowed_tcb_statuses == {"UpToDate"}


def test_flags_off_drop_fields(tmp_path: Path) -> None:
    policy = load_cczoo_json(
        _write(
            tmp_path, _doc(verify_mr_signer="off", verify_isv_prod_id="off", verify_isv_svn="off")
        )
    )
    assert policy.identities == (AcceptedIdentity(mr_enclave=bytes.fromhex(MRE)),)


def test_occlum_debuggable(tmp_path: Path) -> None:
    doc = _doc(verify_enclave_debuggable="on")
    doc["sgx_mrs"][0]["debuggable"] = True  # type: ignore[index]
    policy = load_cczoo_json(_write(tmp_path, doc))
    assert not policy.allow_debug and policy.identities[0].allow_debug


@pytest.mark.parametrize(
    "doc",
    [
        _doc(
            verify_mr_enclave="off",
            verify_mr_signer="off",
            verify_isv_prod_id="off",
            verify_isv_svn="off",
        ),
        _doc(verify_mr_enclave="yes"),
        {**_doc(), "sgx_mrs": []},
        {
            **_doc(),
            "sgx_mrs": [{"mr_enclave": "", "mr_signer": MRS, "isv_prod_id": 0, "isv_svn": 0}],
        },
        {**_doc(), "sgx_mrs": [{"mr_signer": MRS, "isv_prod_id": 0, "isv_svn": 0}]},
        [1, 2],
    ],
)
def test_refusals(tmp_path: Path, doc: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_cczoo_json(_write(tmp_path, doc))
    assert "expected" in info.value.message and "dynamic_config.json" in info.value.message


def test_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError):
        load_cczoo_json(bad)
    with pytest.raises(ConfigError):
        load_cczoo_json(tmp_path / "missing.json")


_leaf = st.none() | st.booleans() | st.integers() | st.sampled_from(["on", "off", MRE, "0"])


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "verify_mr_enclave",
                "verify_mr_signer",
                "verify_isv_svn",
                "verify_enclave_debuggable",
                "sgx_mrs",
            ]
        ),
        _leaf
        | st.lists(
            st.dictionaries(
                st.sampled_from(
                    ["mr_enclave", "mr_signer", "isv_prod_id", "isv_svn", "debuggable"]
                ),
                _leaf,
            )
        ),
    )
)
def test_random_documents_only_config_error(doc: dict[str, object]) -> None:
    with contextlib.suppress(ConfigError):
        policy_from_cczoo(doc, Path("dynamic_config.json"))


MRE_DEBUG = "cc" * 32


def _two_entries(flag: str | None, debuggable: object) -> dict[str, object]:
    doc = _doc() if flag is None else _doc(verify_enclave_debuggable=flag)
    doc["sgx_mrs"] = [
        {"mr_enclave": MRE, "mr_signer": MRS, "isv_prod_id": 0, "isv_svn": 0},
        {
            "mr_enclave": MRE_DEBUG,
            "mr_signer": MRS,
            "isv_prod_id": 0,
            "isv_svn": 0,
            "debuggable": debuggable,
        },
    ]
    return doc


def _evidence(mr_enclave: str, *, debug: bool) -> VerifiedEvidence:
    identity = EnclaveIdentity(
        mr_enclave=bytes.fromhex(mr_enclave),
        mr_signer=bytes.fromhex(MRS),
        isv_prod_id=0,
        isv_svn=0,
        attributes_flags=0x07 if debug else 0x05,
        xfrm=0x3,
        report_data=bytes(64),
    )
    return VerifiedEvidence(identity, "UpToDate", (), simulated=False)


def test_debuggable_applies_to_its_own_entry_only(tmp_path: Path) -> None:
    policy = load_cczoo_json(_write(tmp_path, _two_entries("on", True)))
    assert not policy.allow_debug
    assert [entry.allow_debug for entry in policy.identities] == [False, True]
    policy.check(_evidence(MRE_DEBUG, debug=True))
    policy.check(_evidence(MRE_DEBUG, debug=False))
    policy.check(_evidence(MRE, debug=False))
    with pytest.raises(AttestationError) as info:
        policy.check(_evidence(MRE, debug=True))  # matches only the non-debuggable entry
    assert info.value.code == "attestation.policy_debug"
    with pytest.raises(AttestationError) as info:
        policy.check(_evidence("dd" * 32, debug=True))  # matches no entry at all
    assert info.value.code == "attestation.policy_debug"


@pytest.mark.parametrize(("flag", "debuggable"), [("off", True), (None, True), ("on", False)])
def test_debug_needs_both_the_flag_and_the_entry(
    tmp_path: Path, flag: str | None, debuggable: bool
) -> None:
    policy = load_cczoo_json(_write(tmp_path, _two_entries(flag, debuggable)))
    assert not any(entry.allow_debug for entry in policy.identities)
    with pytest.raises(AttestationError) as info:
        policy.check(_evidence(MRE_DEBUG, debug=True))
    assert info.value.code == "attestation.policy_debug"


@pytest.mark.parametrize("debuggable", ["true", "false", 1, None, [True]])
def test_debuggable_must_be_a_json_boolean(tmp_path: Path, debuggable: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_cczoo_json(_write(tmp_path, _two_entries("on", debuggable)))
    assert "sgx_mrs[1].debuggable: expected true or false" in info.value.message
