"""GramineProvider against a fake /dev/attestation tree in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvfl.attestation import GramineProvider
from cvfl.errors import AttestationError

HELLO = b"Hello, world!".ljust(64, b"\0")


def _tree(root: Path, kind: str = "dcap", quote: bytes | None = None) -> Path:
    root.mkdir(exist_ok=True)
    (root / "attestation_type").write_text(kind + "\n")
    (root / "user_report_data").write_bytes(bytes(64))
    if quote is not None:
        (root / "quote").write_bytes(quote)
    return root


def test_reads_quote_after_writing_report_data(tmp_path: Path, real_quote: bytes) -> None:
    root = _tree(tmp_path / "att", quote=real_quote)
    provider = GramineProvider(root)
    assert provider.name == "gramine" and not provider.simulated
    assert provider.quote(HELLO) == real_quote
    assert (root / "user_report_data").read_bytes() == HELLO


def test_quote_not_bound_to_our_report_data(tmp_path: Path, real_quote: bytes) -> None:
    provider = GramineProvider(_tree(tmp_path / "att", quote=real_quote))
    with pytest.raises(AttestationError) as info:
        provider.quote(bytes(64))
    assert info.value.code == "attestation.gramine_report_data"
    assert "expected " + "00" * 64 in info.value.message
    assert "seen 48656c6c6f" in info.value.message


def test_attestation_type_none_refused(tmp_path: Path) -> None:
    with pytest.raises(AttestationError) as info:
        GramineProvider(_tree(tmp_path / "att", kind="none"))
    assert info.value.code == "attestation.gramine_type"
    assert "expected dcap, seen 'none'" in info.value.message


def test_missing_tree_refused(tmp_path: Path) -> None:
    with pytest.raises(AttestationError) as info:
        GramineProvider(tmp_path / "nothing")
    assert info.value.code == "attestation.gramine_missing"
    assert "gramine-sgx" in info.value.message


@pytest.mark.parametrize("missing", ["quote", "user_report_data"])
def test_missing_pseudo_file(tmp_path: Path, real_quote: bytes, missing: str) -> None:
    root = _tree(tmp_path / "att", quote=real_quote)
    provider = GramineProvider(root)
    (root / missing).unlink()
    with pytest.raises(AttestationError) as info:
        provider.quote(HELLO)
    assert info.value.code == "attestation.gramine_io" and missing in info.value.message


@pytest.mark.parametrize("content", [b"", b"\x03\x00garbage"])
def test_empty_or_malformed_quote(tmp_path: Path, content: bytes) -> None:
    provider = GramineProvider(_tree(tmp_path / "att", quote=content))
    with pytest.raises(AttestationError):
        provider.quote(HELLO)


def test_wrong_report_data_length(tmp_path: Path, real_quote: bytes) -> None:
    provider = GramineProvider(_tree(tmp_path / "att", quote=real_quote))
    with pytest.raises(AttestationError):
        provider.quote(b"short")
