"""Key providers: key files (0600, refused if group/others may read), env (warns), Gramine."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import SealingError
from cvfl.sealing import (
    EnvKeyProvider,
    FileKeyProvider,
    GramineKeyProvider,
    KeyProvider,
    new_key_file,
    read_sealed,
    write_sealed,
)
from cvfl.sealing.keys import fingerprint


def test_new_key_file_is_private_random_and_never_overwritten(tmp_path: Path) -> None:
    a = new_key_file(tmp_path / "sub" / "a.key")
    b = new_key_file(tmp_path / "b.key")
    assert os.stat(tmp_path / "sub" / "a.key").st_mode & 0o777 == 0o600
    assert len(a.key()) == 32 and a.key() != b.key()
    assert a.key_id.startswith("file:") and a.key().hex() not in a.key_id
    before = (tmp_path / "b.key").read_bytes()
    with pytest.raises(SealingError) as info:
        new_key_file(tmp_path / "b.key")
    assert info.value.code == "sealing.key_exists"
    assert (tmp_path / "b.key").read_bytes() == before
    assert isinstance(a, KeyProvider)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.key", "sub"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    new_key_file(path)
    os.chmod(path, mode)
    with pytest.raises(SealingError) as info:
        FileKeyProvider(path)
    assert info.value.code == "sealing.key_permissions"
    assert f"permissions: expected 0600 or stricter, seen {mode:04o}" in info.value.message
    os.chmod(path, 0o400)
    assert FileKeyProvider(path).key_id == FileKeyProvider(path).key_id


@pytest.mark.parametrize(
    ("content", "what"),
    [(b"zz" * 32, "hex digits"), (b"ab" * 8 + b"cd", "key length"), (b"\xff" * 10, "binary")],
)
def test_malformed_key_files(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(SealingError) as info:
        FileKeyProvider(path)
    assert info.value.code == "sealing.key_invalid" and what in info.value.message
    with pytest.raises(SealingError) as missing:
        FileKeyProvider(tmp_path / "absent")
    assert missing.value.code == "sealing.key_missing" and "absent" in missing.value.message


def test_env_key_warns_and_matches_the_same_file_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file_keys = new_key_file(tmp_path / "k")
    hex_key = file_keys.key().hex()
    with caplog.at_level(logging.WARNING, logger="cvfl"):
        env_keys = EnvKeyProvider("CVFL_TEST_KEY", {"CVFL_TEST_KEY": hex_key})
    assert any("development only" in r.getMessage() for r in caplog.records)
    assert hex_key not in caplog.text
    assert env_keys.key() == file_keys.key()
    path = tmp_path / "f"
    write_sealed(path, b"data", purpose="p", keys=file_keys)
    assert read_sealed(path, purpose="p", keys=env_keys) == b"data"
    with pytest.raises(SealingError) as info:
        EnvKeyProvider("CVFL_UNSET", {})
    assert info.value.code == "sealing.key_missing" and "CVFL_UNSET" in info.value.message


def gramine_tree(root: Path, kind: str, key: bytes) -> Path:
    (root / "keys").mkdir(parents=True, exist_ok=True)
    (root / "keys" / f"_sgx_{kind}").write_bytes(key)
    return root


def test_gramine_keys(tmp_path: Path) -> None:
    root = gramine_tree(tmp_path / "att", "mrenclave", os.urandom(16))
    gramine_tree(root, "mrsigner", os.urandom(16))
    enclave = GramineKeyProvider(root, "mrenclave")
    signer = GramineKeyProvider(root, "mrsigner")
    assert enclave.key_id.startswith("sgx-mrenclave:") and signer.key_id.startswith("sgx-mrsigner:")
    assert enclave.key() != signer.key() and len(enclave.key()) == 16
    path = tmp_path / "f"
    write_sealed(path, b"model", purpose="model", keys=enclave)
    with pytest.raises(SealingError) as info:
        read_sealed(path, purpose="model", keys=signer)
    assert info.value.code == "sealing.wrong_key"


def test_gramine_key_errors(tmp_path: Path) -> None:
    with pytest.raises(SealingError) as missing:
        GramineKeyProvider(tmp_path, "mrenclave")
    assert "gramine-sgx" in missing.value.message
    gramine_tree(tmp_path, "mrsigner", b"short")
    with pytest.raises(SealingError) as short:
        GramineKeyProvider(tmp_path, "mrsigner")
    assert "length: expected 16 bytes, seen 5 bytes" in short.value.message
    with pytest.raises(SealingError) as kind:
        GramineKeyProvider(tmp_path, "mrsomething")
    assert "gramine key kind" in kind.value.message


@given(st.binary(min_size=16, max_size=32))
def test_fingerprint_is_short_stable_and_not_the_key(key: bytes) -> None:
    fp = fingerprint(key)
    assert fp == fingerprint(key) and len(fp) == 16 and fp not in key.hex()


class ShortKey:
    key_id = "short:0000"

    def key(self) -> bytes:
        return b"8 bytes!"


def test_a_provider_with_a_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SealingError) as info:
        write_sealed(tmp_path / "f", b"x", purpose="p", keys=ShortKey())
    assert "sealing key length: expected >= 16 bytes, seen 8 bytes" in info.value.message
    assert not (tmp_path / "f").exists() and list(tmp_path.iterdir()) == []
