"""Header encoding and parsing, and the size arithmetic of the chunk layout (property tests)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvfl.errors import SealingError
from cvfl.sealing.format import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    check_purpose,
    encode_prefix,
    plaintext_length,
    read_header,
)

PURPOSES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}", fullmatch=True)
KEY_IDS = st.from_regex(r"[\x21-\x7e]{1,128}", fullmatch=True)
SIZES = st.integers(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)


@given(
    PURPOSES,
    KEY_IDS,
    SIZES,
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)
def test_header_round_trip(purpose: str, key_id: str, chunk: int, nonce: bytes, tag: bytes) -> None:
    prefix = encode_prefix(purpose, key_id, chunk, nonce)
    header = read_header(io.BytesIO(prefix + tag + b"body"), "mem")
    assert (header.purpose, header.key_id, header.chunk_size) == (purpose, key_id, chunk)
    assert header.file_nonce == nonce and header.tag == tag and header.prefix == prefix
    assert header.length == len(prefix) + 32


@given(st.text(max_size=80))
def test_purpose_validation(purpose: str) -> None:
    try:
        assert check_purpose(purpose) == purpose
    except SealingError as exc:
        assert exc.code == "sealing.purpose_invalid" and "purpose: expected" in exc.message


@pytest.mark.parametrize(
    ("chunk", "ok"), [(MIN_CHUNK_SIZE - 1, False), (MAX_CHUNK_SIZE + 1, False)]
)
def test_chunk_size_bounds(chunk: int, ok: bool) -> None:
    with pytest.raises(SealingError) as info:
        encode_prefix("p", "k", chunk, bytes(32))
    assert "chunk size: expected 16..67108864" in info.value.message


@given(st.integers(0, 10_000), st.integers(MIN_CHUNK_SIZE, 200))
def test_plaintext_length_inverts_the_layout(n: int, chunk: int) -> None:
    records = max(1, -(-n // chunk))
    body = n + records * TAG_SIZE
    assert plaintext_length(body, chunk) == n


@given(st.integers(0, 5_000), st.integers(MIN_CHUNK_SIZE, 200))
def test_plaintext_length_refuses_impossible_bodies(body: int, chunk: int) -> None:
    size = plaintext_length(body, chunk)
    rest = body % (chunk + TAG_SIZE)
    assert (size is None) == (body == 0 or 0 < rest < TAG_SIZE)
