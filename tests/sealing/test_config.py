"""The job's [sealing] table."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import ConfigError, SealingError
from cvfl.sealing import (
    EnvKeyProvider,
    FileKeyProvider,
    GramineKeyProvider,
    SealingConfig,
    key_provider_from_config,
    new_key_file,
)


def table(text: str) -> dict[str, object]:
    section = tomllib.loads(text)["sealing"]
    assert isinstance(section, dict)
    return section


def test_file_provider_with_relative_path(tmp_path: Path) -> None:
    new_key_file(tmp_path / "party.key")
    cfg = SealingConfig.from_toml_table(
        table('[sealing]\nprovider = "file"\nkey_file = "party.key"\nchunk_size = 65536\n'),
        base_dir=tmp_path,
    )
    assert cfg.key_file == tmp_path / "party.key" and cfg.chunk_size == 65536
    assert isinstance(key_provider_from_config(cfg), FileKeyProvider)


def test_env_and_gramine_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVFL_CFG_KEY", os.urandom(32).hex())
    env = SealingConfig.from_toml_table(
        table('[sealing]\nprovider = "env"\nkey_env = "CVFL_CFG_KEY"')
    )
    assert isinstance(key_provider_from_config(env), EnvKeyProvider)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "_sgx_mrsigner").write_bytes(os.urandom(16))
    text = f'[sealing]\nprovider = "gramine"\ngramine_root = "{tmp_path}"\ngramine_key = "mrsigner"'
    gramine = SealingConfig.from_toml_table(table(text))
    provider = key_provider_from_config(gramine)
    assert isinstance(provider, GramineKeyProvider) and provider.key_id.startswith("sgx-mrsigner")
    default = SealingConfig.from_toml_table({"provider": "gramine"})
    assert default.gramine_root == Path("/dev/attestation") and default.gramine_key == "mrenclave"
    (tmp_path / "keys" / "_sgx_mrsigner").unlink()
    with pytest.raises(SealingError) as info:  # surfaces at start, naming the key file
        key_provider_from_config(gramine)
    assert "_sgx_mrsigner" in info.value.message


@pytest.mark.parametrize(
    ("tbl", "needle"),
    [
        ({}, "[sealing] provider: required, missing"),
        ({"provider": "vault"}, "[sealing] provider"),
        ({"provider": "file"}, "[sealing] key_file: expected a path"),
        ({"provider": "env"}, "[sealing] key_env"),
        (
            {"provider": "env", "key_env": "X", "key_file": "k"},
            "[sealing] key_file: expected provider = file",
        ),
        (
            {"provider": "file", "key_file": "k", "gramine_key": "mrenclave"},
            "[sealing] gramine_key",
        ),
        ({"provider": "gramine", "gramine_key": "mrsomething"}, "[sealing] gramine_key"),
        ({"provider": "file", "key_file": "k", "chunk_size": True}, "[sealing] chunk_size"),
        ({"provider": "file", "key_file": "k", "chunk_size": 8}, "[sealing] chunk_size"),
        ({"provider": "file", "key_file": 3}, "[sealing] key_file: expected a file path"),
        ({"provider": "file", "key_file": "k", "colour": "red"}, "colour"),
    ],
)
def test_refusals_name_the_field(tbl: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        SealingConfig.from_toml_table(tbl)
    assert needle in info.value.message


@given(
    st.dictionaries(
        st.sampled_from(
            ["provider", "key_file", "key_env", "gramine_root", "gramine_key", "chunk_size", "x"]
        ),
        st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none()),
    )
)
def test_any_table_parses_or_raises_config_error(tbl: dict[str, object]) -> None:
    try:
        cfg = SealingConfig.from_toml_table(tbl)
    except ConfigError:
        return
    assert cfg.provider in ("file", "env", "gramine")
