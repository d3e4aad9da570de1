"""The [attestation] table, provider selection and the routing verifier."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation import (
    AttestationConfig,
    GramineProvider,
    Policy,
    SimulatedProvider,
    default_verifier,
    make_provider,
)
from cvfl.errors import AttestationError, ConfigError

from .conftest import T_VALID

JOB = """
[attestation]
provider = "simulated"
collateral = "c.json"
verify_at = 1750334171
code_paths = ["model.py"]

[attestation.policy]
allow_simulated = true
allowed_tcb_statuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]
[[attestation.policy.identities]]
mr_enclave = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
"""


def test_parse_job_table(tmp_path: Path) -> None:
    cfg = AttestationConfig.from_toml_table(tomllib.loads(JOB)["attestation"], base_dir=tmp_path)
    assert cfg.provider == "simulated"
    assert cfg.collateral == tmp_path / "c.json"
    assert cfg.code_paths == (tmp_path / "model.py",)
    assert cfg.verify_at == T_VALID
    assert cfg.policy.allow_simulated and len(cfg.policy.identities) == 1


def test_defaults_are_strict() -> None:
    cfg = AttestationConfig.from_toml_table({})
    assert cfg.provider == "gramine"
    assert cfg.policy == Policy()


@pytest.mark.parametrize(
    "table",
    [
        {"provider": "sgx"},
        {"verify_at": "now"},
        {"verify_at": -1},
        {"code_paths": "model.py"},
        {"collateral": "a.json", "pccs_url": "http://x"},
        {"policy": {}, "policy_file": "p.toml"},
        {"colateral": "a.json"},
    ],
)
def test_invalid_tables(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        AttestationConfig.from_toml_table(table)


def test_policy_file_and_cczoo(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text("[policy]\nallow_any_identity = true\nallow_debug = true\n")
    cfg = AttestationConfig.from_toml_table({"policy_file": "p.toml"}, base_dir=tmp_path)
    assert cfg.policy.allow_debug and cfg.policy.allow_any_identity
    doc = {"verify_mr_enclave": "on", "sgx_mrs": [{"mr_enclave": "ab" * 32}]}
    (tmp_path / "d.json").write_text(json.dumps(doc))
    cfg = AttestationConfig.from_toml_table({"cczoo_config": "d.json"}, base_dir=tmp_path)
    assert cfg.policy.identities[0].mr_enclave == bytes.fromhex("ab" * 32)


def test_make_provider(tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    model.write_text("x = 1\n")
    sim = make_provider(AttestationConfig(provider="simulated", code_paths=(model,)))
    assert isinstance(sim, SimulatedProvider) and sim.simulated
    (tmp_path / "att").mkdir()
    (tmp_path / "att" / "attestation_type").write_text("dcap")
    real = make_provider(AttestationConfig(provider="gramine", gramine_root=tmp_path / "att"))
    assert isinstance(real, GramineProvider)


def test_routing_verifier(collateral_path: Path, real_quote: bytes) -> None:
    cfg = AttestationConfig(provider="simulated", collateral=collateral_path, verify_at=T_VALID)
    verifier = default_verifier(cfg)
    sim = verifier.verify(SimulatedProvider().quote(bytes(64)))
    assert sim.simulated
    real = verifier.verify(real_quote)  # verify_at from the config
    assert not real.simulated and real.tcb_status == "ConfigurationAndSWHardeningNeeded"
    with pytest.raises(AttestationError) as info:
        verifier.verify(real_quote, at=1_800_000_000)
    assert info.value.code == "attestation.collateral_expired"


def test_real_quote_without_collateral(real_quote: bytes) -> None:
    with pytest.raises(AttestationError) as info:
        default_verifier(AttestationConfig(provider="simulated")).verify(real_quote)
    assert info.value.code == "attestation.no_collateral"


_value = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.lists(st.text())


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "provider",
                "verify_at",
                "allow_fixed_time",
                "code_paths",
                "pccs_url",
                "gramine_root",
                "x",
            ]
        ),
        _value,
        max_size=4,
    )
)
def test_random_tables_only_config_error(table: dict[str, object]) -> None:
    try:
        cfg = AttestationConfig.from_toml_table(table)
    except ConfigError:
        return
    assert cfg.provider in ("simulated", "gramine")


@pytest.mark.parametrize("key", ["gramine_root", "policy_file"])
def test_a_path_whose_tilde_names_no_user_is_a_config_error(key: str, tmp_path: Path) -> None:
    from cvfl.attestation import AttestationConfig

    with pytest.raises(ConfigError, match="~ names a user"):
        AttestationConfig.from_toml_table({key: "~no-such-user-cvfl/x"}, base_dir=tmp_path)
