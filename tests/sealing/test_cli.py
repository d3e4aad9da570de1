"""``cvfl seal``, ``unseal``, ``reseal`` and ``keys new`` through the real entry point."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvfl.cli.app import main
from cvfl.errors import SealingError
from cvfl.sealing import FileKeyProvider, is_sealed, read_header_of


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())  # rich wraps long lines


@pytest.fixture
def setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, bytes]:
    key = tmp_path / "op.key"
    code, out, _ = run(["keys", "new", str(key)], capsys)
    assert code == 0 and "key id file:" in out
    plain = tmp_path / "model.bin"
    data = os.urandom(3000)
    plain.write_bytes(data)
    return key, plain, data


def test_seal_unseal_round_trip(
    tmp_path: Path, setup: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key, plain, data = setup
    sealed, back = tmp_path / "model.sealed", tmp_path / "back.bin"
    args = ["--purpose", "model", "--key-file", str(key)]
    code, _, _ = run(["seal", str(plain), str(sealed), *args, "--chunk-size", "512"], capsys)
    assert code == 0 and is_sealed(sealed) and read_header_of(sealed).chunk_size == 512
    code, _, _ = run(["unseal", str(sealed), str(back), *args], capsys)
    assert code == 0 and back.read_bytes() == data
    code, _, err = run(["unseal", str(sealed), str(back), *args], capsys)
    assert code == 2 and "--force" in err
    code, _, _ = run(["unseal", str(sealed), str(back), *args, "--force"], capsys)
    assert code == 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "purpose", "key"])
def test_unseal_failure_exits_non_zero_and_writes_nothing(
    tmp_path: Path, setup: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    key, plain, _ = setup
    sealed, out = tmp_path / "s", tmp_path / "out.bin"
    run(["seal", str(plain), str(sealed), "--purpose", "model", "--key-file", str(key)], capsys)
    blob = bytearray(sealed.read_bytes())
    purpose, key_args = "model", ["--key-file", str(key)]
    if damage == "flip":
        blob[-100] ^= 0x10
    elif damage == "truncate":
        del blob[-1:]
    elif damage == "append":
        blob += b"\x00" * 16
    elif damage == "purpose":
        purpose = "checkpoint"
    else:
        os.environ["CVFL_TEST_OTHER_KEY"] = os.urandom(32).hex()
        key_args = ["--key-env", "CVFL_TEST_OTHER_KEY"]
    sealed.write_bytes(bytes(blob))
    code, stdout, err = run(
        ["unseal", str(sealed), str(out), "--purpose", purpose, *key_args], capsys
    )
    os.environ.pop("CVFL_TEST_OTHER_KEY", None)
    assert code == SealingError.exit_code
    assert str(sealed) in err
    assert not out.exists() and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "op.key", "s"]


def test_key_source_must_be_exactly_one(
    tmp_path: Path, setup: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key, plain, _ = setup
    code, _, err = run(["seal", str(plain), str(tmp_path / "s"), "--purpose", "m"], capsys)
    assert code == 2 and "expected exactly one of --key-file" in err
    both = ["--key-file", str(key), "--gramine-key", "mrenclave"]
    code, _, err = run(["seal", str(plain), str(tmp_path / "s"), "--purpose", "m", *both], capsys)
    assert code == 2 and "seen --key-file, --gramine-key" in err
    assert not (tmp_path / "s").exists()


def test_open_key_file_refused(
    tmp_path: Path, setup: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key, plain, _ = setup
    os.chmod(key, 0o644)
    code, _, err = run(
        ["seal", str(plain), str(tmp_path / "s"), "-p", "m", "--key-file", str(key)], capsys
    )
    assert code == 6 and "permissions" in err and not (tmp_path / "s").exists()


def test_gramine_keys_and_reseal(
    tmp_path: Path, setup: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key, plain, data = setup
    root = tmp_path / "att"
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "_sgx_mrenclave").write_bytes(os.urandom(16))
    sealed = tmp_path / "s"
    gramine = ["--gramine-key", "mrenclave", "--gramine-root", str(root)]
    code, _, _ = run(["seal", str(plain), str(sealed), "-p", "model", *gramine], capsys)
    assert code == 0 and read_header_of(sealed).key_id.startswith("sgx-mrenclave:")
    old = ["--old-gramine-key", "mrenclave", "--old-gramine-root", str(root)]
    code, out, _ = run(
        ["reseal", str(sealed), "-p", "model", *old, "--new-key-file", str(key)], capsys
    )
    assert code == 0 and "resealed" in out
    assert read_header_of(sealed).key_id == FileKeyProvider(key).key_id
    code, _, err = run(
        [
            "reseal",
            str(sealed),
            "-p",
            "other",
            "--old-key-file",
            str(key),
            "--new-key-file",
            str(key),
        ],
        capsys,
    )
    assert code == 6 and "purpose: expected other, seen model" in err
    code, _, _ = run(
        ["unseal", str(sealed), str(tmp_path / "b"), "-p", "model", "--key-file", str(key)], capsys
    )
    assert code == 0 and (tmp_path / "b").read_bytes() == data


def test_keys_new_refuses_to_overwrite(
    setup: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key, _, _ = setup
    before = key.read_bytes()
    code, _, err = run(["keys", "new", str(key)], capsys)
    assert code == 6 and "already exists" in err and key.read_bytes() == before
