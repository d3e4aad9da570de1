"""SGX SIGSTRUCT parsing and ``cvfl attest measure``, on SIGSTRUCTs signed here for real."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvfl.attestation.sigstruct import parse_sigstruct
from cvfl.cli.app import main
from cvfl.errors import AttestationError

MR_ENCLAVE = bytes(range(32))
HEADER = bytes.fromhex("06000000e10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")


@dataclass(frozen=True)
class Built:
    data: bytes
    modulus_le: bytes


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


def build(
    key: rsa.RSAPrivateKey,
    *,
    isv_prod_id: int = 7,
    isv_svn: int = 3,
    flags: int = 0x4,
    date: bytes = struct.pack("<HBB", 2025, 3, 14),  # Gramine's layout
) -> Built:
    """A SIGSTRUCT laid out by the Linux kernel's struct sgx_sigstruct, signed as EINIT checks."""
    buf = bytearray(1808)
    buf[0:16] = HEADER
    buf[20:24] = date
    buf[24:40] = HEADER2
    struct.pack_into("<II", buf, 900, 0x0, 0xFFFFFFFF)  # miscselect, misc_mask
    struct.pack_into("<QQQQ", buf, 928, flags, 0x3, 0xFFFFFFFFFFFFFFFD, 0xFFFFFFFFFFF9FF1B)
    buf[960:992] = MR_ENCLAVE
    struct.pack_into("<HH", buf, 1024, isv_prod_id, isv_svn)
    signed = bytes(buf[0:128] + buf[900:1028])
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    n = key.public_key().public_numbers().n
    s = int.from_bytes(signature, "big")
    q1, q2 = s * s // n, (s * s % n) * s // n
    modulus_le = n.to_bytes(384, "little")
    buf[128:512] = modulus_le
    struct.pack_into("<I", buf, 512, 3)
    buf[516:900] = s.to_bytes(384, "little")
    buf[1040:1424] = q1.to_bytes(384, "little")
    buf[1424:1808] = q2.to_bytes(384, "little")
    return Built(bytes(buf), modulus_le)


@pytest.fixture(scope="module")
def built(key: rsa.RSAPrivateKey) -> Built:
    return build(key)


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def test_parse_reads_every_field_and_verifies_the_signature(built: Built) -> None:
    parsed = parse_sigstruct(built.data)
    assert parsed.mr_enclave == MR_ENCLAVE
    assert parsed.mr_signer == hashlib.sha256(built.modulus_le).digest()
    assert (parsed.isv_prod_id, parsed.isv_svn) == (7, 3)
    assert (parsed.misc_select, parsed.misc_mask) == (0, 0xFFFFFFFF)
    assert (parsed.attributes_flags, parsed.attributes_xfrm) == (0x4, 0x3)
    assert parsed.attributes_flags_mask == 0xFFFFFFFFFFFFFFFD
    assert not parsed.debug
    assert parsed.date == dt.date(2025, 3, 14)
    assert parsed.signature_valid and parsed.q_valid


def test_debug_flag_and_intel_bcd_date(key: rsa.RSAPrivateKey) -> None:
    parsed = parse_sigstruct(build(key, flags=0x6, date=struct.pack("<I", 0x20240531)).data)
    assert parsed.debug and parsed.signature_valid
    assert parsed.date == dt.date(2024, 5, 31)


@pytest.mark.parametrize(
    "offset",
    [0 + 40, 60, 900, 930, 960, 991, 1024, 1026, 1027, 516, 899, 128],
    ids=lambda o: f"byte{o}",
)
def test_a_flipped_byte_in_a_signed_region_or_the_key_is_invalid(built: Built, offset: int) -> None:
    parsed = parse_sigstruct(_flip(built.data, offset))
    assert not parsed.signature_valid


def test_bytes_outside_the_signed_regions_do_not_matter_except_q1_q2(built: Built) -> None:
    assert parse_sigstruct(_flip(built.data, 1030)).signature_valid  # reserved, unsigned
    tampered_q = parse_sigstruct(_flip(built.data, 1100))
    assert tampered_q.signature_valid and not tampered_q.q_valid


@pytest.mark.parametrize(
    ("data", "code", "needle"),
    [
        (b"\x00" * 1807, "attestation.sigstruct_size", "expected 1808 bytes, seen 1807 bytes"),
        (b"", "attestation.sigstruct_size", "seen 0 bytes"),
    ],
)
def test_wrong_size_is_refused(data: bytes, code: str, needle: str) -> None:
    with pytest.raises(AttestationError) as err:
        parse_sigstruct(data)
    assert err.value.code == code and needle in err.value.message


def test_wrong_headers_exponent_and_modulus_are_refused(built: Built) -> None:
    cases = {
        "sigstruct header: expected 06000000e1": (_flip(built.data, 4), "sigstruct_header"),
        "sigstruct header2: expected 0101": (_flip(built.data, 30), "sigstruct_header"),
    }
    exp = bytearray(built.data)
    struct.pack_into("<I", exp, 512, 65537)
    cases["sigstruct exponent: expected 3, seen 65537"] = (bytes(exp), "sigstruct_exponent")
    short = bytearray(built.data)
    short[128 + 383] = 0  # the modulus' top byte (little-endian): no longer 3072 bits
    cases["sigstruct modulus: expected 3072 bits, seen"] = (bytes(short), "sigstruct_modulus")
    for needle, (data, code) in cases.items():
        with pytest.raises(AttestationError) as err:
            parse_sigstruct(data)
        assert err.value.code == f"attestation.{code}", needle
        assert needle in err.value.message, err.value.message


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2048), st.binary(min_size=1808, max_size=1808)))
def test_arbitrary_bytes_parse_or_raise_attestation_error(data: bytes) -> None:
    try:
        parsed = parse_sigstruct(data)
    except AttestationError as exc:
        assert exc.code.startswith("attestation.sigstruct_")
    else:
        assert not parsed.signature_valid  # nobody can forge the signature by chance


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(0, 1807), bit=st.integers(0, 7))
def test_any_single_bit_flip_is_noticed_or_harmless(built: Built, offset: int, bit: int) -> None:
    data = bytearray(built.data)
    data[offset] ^= 1 << bit
    try:
        parsed = parse_sigstruct(bytes(data))
    except AttestationError:
        assert offset < 40 or 512 <= offset < 516 or 128 <= offset < 512
        return
    signed = offset < 128 or 900 <= offset < 1028 or 128 <= offset < 900
    if signed:
        assert not parsed.signature_valid
    elif offset >= 1040:
        assert parsed.signature_valid and not parsed.q_valid
    else:
        assert parsed.signature_valid and parsed.q_valid  # unsigned reserved bytes


def _measure(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(["attest", "measure", *argv])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


def test_measure_prints_the_build_identity(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sig = tmp_path / "cvfl.sig"
    sig.write_bytes(built.data)
    code, out, _ = _measure([str(sig)], capsys)
    assert code == 0, out
    lines = out.splitlines()
    assert f"mr_enclave: {MR_ENCLAVE.hex()}" in lines
    assert f"mr_signer: {hashlib.sha256(built.modulus_le).hexdigest()}" in lines
    assert "isv_prod_id: 7" in lines and "isv_svn: 3" in lines
    assert "signature: valid" in lines and "date: 2025-03-14" in lines and "debug: false" in lines
    code, out, _ = _measure([str(sig), "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["mr_enclave"] == MR_ENCLAVE.hex() and doc["signature_valid"] is True
    assert doc["isv_svn"] == 3 and doc["file"] == str(sig)


def test_measure_says_invalid_and_exits_5_on_a_tampered_build(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sig = tmp_path / "cvfl.sig"
    sig.write_bytes(_flip(built.data, 960))  # another mr_enclave under the same signature
    code, out, err = _measure([str(sig)], capsys)
    assert code == 5
    assert "signature: INVALID" in out.splitlines()
    assert "[attestation.sigstruct_signature]" in err and "seen signature INVALID" in err


def test_measure_refuses_a_file_that_is_not_a_sigstruct(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "cvfl.manifest.sgx"
    bad.write_bytes(b"[loader]\n" * 10)
    code, _, err = _measure([str(bad)], capsys)
    assert code == 5 and "sigstruct size: expected 1808 bytes, seen 90 bytes" in err
    code, _, err = _measure([str(tmp_path / "missing.sig")], capsys)
    assert code == 2 and "cannot read" in err
