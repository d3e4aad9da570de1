"""DCAP verification of the real vectors with dcap-qvl: status, expiry, tampering, wrong root."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation import DcapVerifier, FileCollateral, SimulatedProvider
from cvfl.attestation.quote import SIGNED_LEN
from cvfl.errors import AttestationError, ConfigError

from .conftest import T_VALID

# The collateral's window (test vector README): TCB info issued 1750330571; QE identity ends
# before 1752919278.
T_BEFORE = 1750330570
T_AFTER = 1752919279


@pytest.fixture(scope="module")
def verifier(collateral_path: Path) -> DcapVerifier:
    return DcapVerifier(FileCollateral(collateral_path))


def test_real_quote_verifies_with_status_and_advisories(
    verifier: DcapVerifier, real_quote: bytes
) -> None:
    evidence = verifier.verify(real_quote, at=T_VALID)
    assert evidence.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert evidence.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert not evidence.simulated
    assert evidence.identity.mr_enclave.hex().startswith("33d8736d")


def test_default_time_is_used(collateral_path: Path, real_quote: bytes) -> None:
    fixed = DcapVerifier(FileCollateral(collateral_path), default_at=T_VALID)
    assert fixed.verify(real_quote).tcb_status == "ConfigurationAndSWHardeningNeeded"


@pytest.mark.parametrize("moment", [T_BEFORE, T_AFTER, 1_800_000_000])
def test_outside_window_collateral_expired(
    verifier: DcapVerifier, real_quote: bytes, moment: int
) -> None:
    with pytest.raises(AttestationError) as info:
        verifier.verify(real_quote, at=moment)
    assert info.value.code == "attestation.collateral_expired"
    message = info.value.message
    assert "expired" in message and "verification time" in message and str(moment) in message
    assert "2025-06-19" in message  # the expected window is named


def test_every_flipped_byte_of_header_and_body_refused(
    verifier: DcapVerifier, real_quote: bytes
) -> None:
    for offset in range(SIGNED_LEN):
        tampered = bytearray(real_quote)
        tampered[offset] ^= 0x01
        with pytest.raises(AttestationError):
            verifier.verify(bytes(tampered), at=T_VALID)


def test_flipped_signature_key_and_qe_report_refused(
    verifier: DcapVerifier, real_quote: bytes
) -> None:
    # ISV signature (64), attestation key (64), QE report (384), QE report signature (64),
    # QE auth data and the certification data header, up to the PEM chain.
    pem_start = real_quote.index(b"-----BEGIN")
    for offset in range(SIGNED_LEN + 4, pem_start - 4):
        tampered = bytearray(real_quote)
        tampered[offset] ^= 0x01
        with pytest.raises(AttestationError):
            verifier.verify(bytes(tampered), at=T_VALID)


def test_flipped_pck_and_intermediate_certificate_bytes_refused(
    verifier: DcapVerifier, real_quote: bytes
) -> None:
    # Base64 body bytes of the PCK leaf and the intermediate CA (PEM line breaks and the
    # embedded copy of the root are not checked by dcap-qvl: it anchors at its built-in root).
    start = real_quote.index(b"-----BEGIN")
    second_end = real_quote.index(b"-----END", real_quote.index(b"-----END", start) + 1)
    positions = [
        i
        for i in range(start, second_end)
        if real_quote[i : i + 1].isalnum()
        and b"-----" not in real_quote[real_quote.rfind(b"\n", 0, i) + 1 : i + 1]
    ]
    assert len(positions) > 1000
    for offset in positions[::9]:
        tampered = bytearray(real_quote)
        tampered[offset] ^= 0x01
        with pytest.raises(AttestationError):
            verifier.verify(bytes(tampered), at=T_VALID)


def test_gramine_v1_quote_refused_preproduction_root(
    verifier: DcapVerifier, gramine_quote: bytes
) -> None:
    with pytest.raises(AttestationError) as info:
        verifier.verify(gramine_quote, at=T_VALID)
    assert info.value.code == "attestation.dcap_failed"
    assert "certificate chain" in info.value.message


def test_simulated_quote_refused_by_dcap(verifier: DcapVerifier) -> None:
    quote = SimulatedProvider().quote(bytes(64))
    with pytest.raises(AttestationError) as info:
        verifier.verify(quote, at=T_VALID)
    assert info.value.code == "attestation.dcap_simulated"


def test_bad_collateral_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError):
        FileCollateral(bad)
    with pytest.raises(ConfigError):
        FileCollateral(tmp_path / "missing.json")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_garbage_through_dcap_only_attestation_error(
    verifier: DcapVerifier, real_quote: bytes, data: st.DataObject
) -> None:
    raw = bytearray(real_quote)
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    # Positions whose final byte differs (a later write may restore an earlier one).
    changed = {pos for pos, (a, b) in enumerate(zip(raw, real_quote, strict=True)) if a != b}
    cut = data.draw(st.integers(0, len(raw)))
    blob = bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw)
    try:
        verifier.verify(blob, at=T_VALID)
    except AttestationError:
        return
    # Accepted: only possible when nothing changed, or only bytes of the PEM chain that
    # dcap-qvl does not rely on (line breaks, armour, the embedded root copy) changed.
    assert blob == bytes(raw) and len(blob) == len(real_quote)
    assert all(pos >= real_quote.index(b"-----BEGIN") for pos in changed)
