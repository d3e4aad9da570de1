"""The strict CBOR subset decoder: agrees with cbor2 on what it accepts, refuses the rest."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import AttestationError
from cvfl.ratls.cbor import MAX_DEPTH, Tagged, decode

leaf = st.integers(0, 2**64 - 1) | st.binary(max_size=64) | st.text(max_size=32)
tree = st.recursive(
    leaf,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5)
    ),
    max_leaves=20,
)


def _plain(value: object) -> object:
    if isinstance(value, Tagged):
        return ("tag", value.tag, _plain(value.item))
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@settings(max_examples=150, deadline=None)
@given(value=tree)
def test_round_trip_with_cbor2(value: object) -> None:
    try:
        decoded = decode(cbor2.dumps(value))
    except AttestationError:
        return  # allowed only for nesting beyond MAX_DEPTH
    assert decoded == value


@given(tag=st.integers(0, 2**32), value=leaf)
def test_tags(tag: int, value: object) -> None:
    assert _plain(decode(cbor2.dumps(cbor2.CBORTag(tag, value)))) == ("tag", tag, value)


@settings(max_examples=300)
@given(data=st.binary(max_size=200))
def test_garbage_is_refused_cleanly(data: bytes) -> None:
    try:
        decode(data)
    except AttestationError as exc:
        assert exc.code == "ratls.cbor"


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        b"\x5f\x41a\xff",  # indefinite byte string
        b"\x9f\x01\xff",  # indefinite array
        b"\x20",  # negative integer
        b"\xf9\x3c\x00",  # float
        b"\xf5",  # simple value (true)
        b"\x01\x02",  # trailing bytes
        b"\x5a\xff\xff\xff\xff",  # byte string longer than the input
        b"\xa2\x61a\x01\x61a\x02",  # duplicate map key
        b"\x81" * (MAX_DEPTH + 2) + b"\x01",  # too deep
        b"\x62\xff\xfe",  # invalid UTF-8
    ],
)
def test_unsupported_or_malformed_is_refused(data: bytes) -> None:
    with pytest.raises(AttestationError):
        decode(data)
