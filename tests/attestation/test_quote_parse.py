"""SGX DCAP v3 parsing: the real vectors, each structural refusal, and garbage."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.attestation import parse_quote
from cvfl.attestation.quote import MAX_QUOTE_LEN, MIN_QUOTE_LEN, SIGNED_LEN
from cvfl.errors import AttestationError


def test_real_quote_identity(real_quote: bytes) -> None:
    quote = parse_quote(real_quote)
    ident = quote.identity
    assert quote.version == 3 and quote.attestation_key_type == 2 and quote.tee_type == 0
    assert quote.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"
    assert ident.mr_enclave.hex() == (
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    )
    assert ident.mr_signer.hex() == (
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    )
    assert (ident.isv_prod_id, ident.isv_svn, ident.attributes_flags) == (0, 0, 0x05)
    assert not ident.debug
    assert ident.report_data == b"Hello, world!".ljust(64, b"\0")
    assert quote.signed_part == real_quote[:SIGNED_LEN]
    assert len(quote.signature_data) == len(real_quote) - MIN_QUOTE_LEN


def test_gramine_certificate_quote_identity(gramine_quote: bytes) -> None:
    ident = parse_quote(gramine_quote).identity
    assert ident.attributes_flags == 0x07 and ident.debug
    assert ident.mr_enclave.hex() == (
        "d1d2ca3da743b572ed3f664664e1ff110eac9913caebca38f034ec9a82a1bd18"
    )
    assert ident.mr_signer.hex() == (
        "75fade751212bbc7aa913f82c903c8f23edfffe099414a6f2d20207b53eb9dbb"
    )
    assert (ident.isv_prod_id, ident.isv_svn) == (0, 0)
    assert ident.report_data[32:] == bytes(32)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "code", "field"),
    [
        (0, "<H", 4, "attestation.quote_version", "version"),
        (2, "<H", 3, "attestation.quote_key_type", "attestation_key_type"),
        (4, "<I", 0x81, "attestation.quote_tee_type", "tee_type"),
        (SIGNED_LEN, "<I", 7, "attestation.quote_signature_length", "signature_data_len"),
    ],
)
def test_structural_refusals_name_the_field(
    real_quote: bytes, offset: int, fmt: str, value: int, code: str, field: str
) -> None:
    data = bytearray(real_quote)
    struct.pack_into(fmt, data, offset, value)
    with pytest.raises(AttestationError) as info:
        parse_quote(bytes(data))
    assert info.value.code == code
    assert field in info.value.message and "expected" in info.value.message


def test_truncated_and_oversized(real_quote: bytes) -> None:
    with pytest.raises(AttestationError) as info:
        parse_quote(real_quote[: MIN_QUOTE_LEN - 1])
    assert info.value.code == "attestation.quote_truncated"
    with pytest.raises(AttestationError) as info:
        parse_quote(real_quote[:-1])
    assert info.value.code == "attestation.quote_signature_length"
    with pytest.raises(AttestationError) as info:
        parse_quote(real_quote + bytes(MAX_QUOTE_LEN))
    assert info.value.code == "attestation.quote_oversized"
    with pytest.raises(AttestationError):
        parse_quote("not bytes")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_QUOTE_LEN + 64))
def test_random_bytes_only_attestation_error(data: bytes) -> None:
    with contextlib.suppress(AttestationError):
        parse_quote(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_real_quote_only_attestation_error(real_quote: bytes, data: st.DataObject) -> None:
    raw = bytearray(real_quote)
    cut = data.draw(st.integers(0, len(raw) + 100))
    for _ in range(data.draw(st.integers(0, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    blob = bytes(raw[:cut]) + data.draw(st.binary(max_size=64))
    try:
        quote = parse_quote(blob)
    except AttestationError:
        return
    assert quote.raw == blob
