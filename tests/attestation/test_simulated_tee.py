"""The simulated TEE: layout, marker, measurement of the code, signature checks, loudness."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cvfl.attestation import (
    SIM_MR_SIGNER,
    SIM_QE_VENDOR_ID,
    SimulatedProvider,
    SimulatedVerifier,
    measure_code,
    parse_quote,
)
from cvfl.attestation.simulated import SIM_PUBLIC_KEY
from cvfl.errors import AttestationError, ConfigError

REPORT = bytes(range(64))


@pytest.fixture(scope="module")
def provider() -> SimulatedProvider:
    return SimulatedProvider()


def test_quote_layout_and_marker(provider: SimulatedProvider) -> None:
    quote = parse_quote(provider.quote(REPORT))
    assert quote.version == 3 and quote.qe_vendor_id == SIM_QE_VENDOR_ID
    assert quote.identity.report_data == REPORT
    assert quote.identity.mr_enclave == provider.mr_enclave == measure_code()
    assert quote.identity.mr_signer == SIM_MR_SIGNER
    assert not quote.identity.debug
    assert quote.signature_data[64:] == SIM_PUBLIC_KEY


def test_verifier_accepts_and_marks_simulated(provider: SimulatedProvider) -> None:
    evidence = SimulatedVerifier().verify(provider.quote(REPORT))
    assert evidence.simulated and evidence.tcb_status == "Simulated"
    assert evidence.identity.report_data == REPORT


def test_every_flipped_byte_refused(provider: SimulatedProvider) -> None:
    quote = provider.quote(REPORT)
    verifier = SimulatedVerifier()
    for offset in range(len(quote)):
        tampered = bytearray(quote)
        tampered[offset] ^= 0x80
        with pytest.raises(AttestationError):
            verifier.verify(bytes(tampered))


def test_real_quote_is_not_simulated(real_quote: bytes) -> None:
    with pytest.raises(AttestationError) as info:
        SimulatedVerifier().verify(real_quote)
    assert info.value.code == "attestation.sim_marker"
    assert "qe_vendor_id" in info.value.message


def test_measurement_follows_extra_code(tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    model.write_text("LAYERS = 2\n")
    first = measure_code([model])
    assert first == measure_code([model]) != measure_code()
    model.write_text("LAYERS = 3\n")
    assert measure_code([model]) != first
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "a.py").write_text("x = 1\n")
    before = measure_code([folder])
    (folder / "b.py").write_text("")
    assert measure_code([folder]) != before
    with pytest.raises(ConfigError):
        measure_code([tmp_path / "missing.py"])


def test_creation_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cvfl"):
        SimulatedProvider()
    assert any("not a real enclave" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", [b"", bytes(63), bytes(65)])
def test_report_data_must_be_64_bytes(provider: SimulatedProvider, bad: bytes) -> None:
    with pytest.raises(AttestationError) as info:
        provider.quote(bad)
    assert "report_data length: expected 64" in info.value.message
