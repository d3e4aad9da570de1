"""Artifacts are read only in the form the job gives: a property over what a host may plant."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import ConfigError, SealingError
from cvfl.sealing import Artifacts, new_key_file
from cvfl.sealing.format import MAGIC
from cvfl.train.config import job_from_mapping

PURPOSE = "checkpoint"

# Bytes that do not start with the sealed-file magic: any plaintext a host could plant.
plain_bytes = st.binary(max_size=256).filter(lambda b: not b.startswith(MAGIC))


@settings(max_examples=60, deadline=None)
@given(
    planted=plain_bytes,
    where=st.sampled_from(["over", "instead", "beside"]),
    by_name=st.sampled_from(["base", "sealed"]),
)
def test_any_plaintext_at_either_name_of_a_sealed_artifact_is_refused(
    planted: bytes, where: str, by_name: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "a.bin"
        store = Artifacts(new_key_file(Path(folder) / "k.key"))
        sealed = store.write(base, b"the real thing", PURPOSE)
        target = sealed if where == "over" else base
        if where == "instead":
            sealed.unlink()
        target.write_bytes(planted)
        with pytest.raises(SealingError) as info:
            store.read(base if by_name == "base" else sealed, PURPOSE)
        assert info.value.code == "sealing.unexpected_plaintext"
        assert info.value.message.startswith(f"{target}: expected a sealed file")


def test_sealed_artifact_reads_back_by_either_name(tmp_path: Path) -> None:
    store = Artifacts(new_key_file(tmp_path / "k.key"))
    sealed = store.write(tmp_path / "a.bin", b"data", PURPOSE)
    assert store.read(tmp_path / "a.bin", PURPOSE) == store.read(sealed, PURPOSE) == b"data"
    sealed.unlink()
    with pytest.raises(SealingError) as info:
        store.read(tmp_path / "a.bin", PURPOSE)
    assert info.value.code == "sealing.missing"


def test_plaintext_store_refuses_a_sealed_file(tmp_path: Path) -> None:
    sealed = Artifacts(new_key_file(tmp_path / "k.key")).write(tmp_path / "a.bin", b"data", PURPOSE)
    (tmp_path / "a.bin").write_bytes(sealed.read_bytes())
    with pytest.raises(SealingError) as info:
        Artifacts(None).read(tmp_path / "a.bin", PURPOSE)
    assert info.value.code == "sealing.unexpected_sealed"


@pytest.mark.parametrize("value", ["true", "false", 1, 0])
def test_plaintext_outputs_must_be_a_boolean(tmp_path: Path, value: object) -> None:
    raw = {
        "job": {"id": "j", "role": "leader", "plaintext_outputs": value},
        "data": {"path": "t.parquet"},
    }
    with pytest.raises(ConfigError) as info:
        job_from_mapping(raw, tmp_path / "job.toml")
    assert "[job] plaintext_outputs: expected true or false" in info.value.message
