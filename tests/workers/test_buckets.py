"""Sealed bucket records: round trip, tamper, replay, wrong key, and the parser under hypothesis."""

from __future__ import annotations

import os
import struct
from typing import TypedDict, Unpack

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.errors import ProtocolError, SealingError
from cvfl.workers.buckets import (
    BUCKET_LABEL,
    HEADER_SIZE,
    OVERHEAD,
    Binding,
    open_bucket,
    parse_header,
    seal_bucket,
)
from cvfl.workers.tensors import decode_tensor, encode_tensor

KEY = bytes(range(32))
BIND = Binding(BUCKET_LABEL, "job-1", "leader", 4)
PAYLOAD = torch.arange(64, dtype=torch.float32).numpy().tobytes()


class Position(TypedDict):
    """Where a record belongs: the keyword arguments that bind it to a rank, step and bucket."""

    sender: int
    step: int
    index: int


class Claim(TypedDict, total=False):
    """What the opener expects of a record: its position and, optionally, payload length."""

    sender: int
    step: int
    index: int
    length: int


AT: Position = {"sender": 2, "step": 7, "index": 3}


def sealed() -> bytes:
    return seal_bucket(KEY, BIND, PAYLOAD, **AT)


def refused(record: bytes, *, key: bytes = KEY, bind: Binding = BIND, **at: Unpack[Claim]) -> str:
    claimed: Claim = {**AT, **at}
    with pytest.raises(SealingError) as info:
        open_bucket(key, bind, record, **claimed)
    assert info.value.code == "workers.bucket"
    return info.value.message


def test_round_trip_and_layout() -> None:
    record = sealed()
    assert len(record) == len(PAYLOAD) + OVERHEAD
    assert open_bucket(KEY, BIND, record, **AT, length=len(PAYLOAD)) == PAYLOAD
    head = parse_header(record)
    assert (head.sender, head.world_size, head.step, head.index, head.length) == (
        2,
        4,
        7,
        3,
        len(PAYLOAD),
    )
    assert record[:4] == b"CVWB" and record[4] == 1
    assert PAYLOAD[:16] not in record  # the payload does not appear in the clear


def test_fresh_nonce_every_time() -> None:
    assert sealed()[HEADER_SIZE - 12 : HEADER_SIZE] != sealed()[HEADER_SIZE - 12 : HEADER_SIZE]
    assert sealed() != sealed()


def test_tampered_ciphertext_names_sender_step_and_bucket() -> None:
    record = bytearray(sealed())
    record[HEADER_SIZE + 5] ^= 0x01
    message = refused(bytes(record))
    assert message.startswith("sealed bucket from rank 2, step 7, bucket 3: ")
    assert "authentication tag: expected valid under the group key, seen invalid" in message


@pytest.mark.parametrize(
    ("at", "field"),
    [
        ({"step": 6}, "step: expected 6, seen 7"),
        ({"index": 4}, "bucket index: expected 4, seen 3"),
        ({"sender": 1}, "sender rank: expected 1, seen 2"),
    ],
)
def test_replay_from_another_step_bucket_or_rank(at: Claim, field: str) -> None:
    assert field in refused(sealed(), **at)


@pytest.mark.parametrize(("offset", "fmt", "value"), [(13, ">Q", 6), (21, ">I", 4), (5, ">I", 1)])
def test_rewritten_header_still_fails_authentication(offset: int, fmt: str, value: int) -> None:
    """An attacker who also rewrites the header to fit the replay fails on the tag."""
    record = bytearray(sealed())
    struct.pack_into(fmt, record, offset, value)
    moved: dict[int, Claim] = {13: {"step": 6}, 21: {"index": 4}, 5: {"sender": 1}}
    at = moved[offset]
    assert "authentication tag" in refused(bytes(record), **at)


@pytest.mark.parametrize(
    "other",
    [
        Binding(BUCKET_LABEL, "job-2", "leader", 4),
        Binding(BUCKET_LABEL, "job-1", "follower", 4),
        Binding("gather:x", "job-1", "leader", 4),
    ],
)
def test_other_job_role_or_label_refused(other: Binding) -> None:
    assert "authentication tag" in refused(sealed(), bind=other)


def test_other_world_size_refused() -> None:
    other = Binding(BUCKET_LABEL, "job-1", "leader", 3)
    assert "world size: expected 3, seen 4" in refused(sealed(), bind=other)


def test_wrong_key_refused() -> None:
    assert "authentication tag" in refused(sealed(), key=os.urandom(32))


def test_key_size_checked() -> None:
    with pytest.raises(SealingError) as info:
        seal_bucket(KEY[:16], BIND, b"x", **AT)
    assert info.value.code == "workers.key" and "expected 32 bytes, seen 16 bytes" in str(
        info.value
    )


def test_expected_length_checked() -> None:
    assert "payload size: expected 8, seen 256" in refused(sealed(), length=8)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_truncation_or_bit_flip_is_refused(data: st.DataObject) -> None:
    record = sealed()
    if data.draw(st.booleans(), label="truncate"):
        cut = data.draw(st.integers(0, len(record) - 1), label="keep")
        bad = record[:cut]
    else:
        pos = data.draw(st.integers(0, len(record) - 1), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        flipped = bytearray(record)
        flipped[pos] ^= 1 << bit
        bad = bytes(flipped)
    refused(bad)


@settings(max_examples=150, deadline=None)
@given(junk=st.binary(max_size=200))
def test_parser_never_crashes_on_junk(junk: bytes) -> None:
    with pytest.raises(SealingError):
        open_bucket(KEY, BIND, junk, **AT)


@settings(max_examples=50, deadline=None)
@given(
    payload=st.binary(max_size=300), step=st.integers(0, 2**64 - 1), index=st.integers(0, 2**32 - 1)
)
def test_round_trip_any_payload(payload: bytes, step: int, index: int) -> None:
    record = seal_bucket(KEY, BIND, payload, sender=0, step=step, index=index)
    assert open_bucket(KEY, BIND, record, sender=0, step=step, index=index) == payload


@pytest.mark.parametrize(
    "tensor",
    [
        torch.randn(3, 2, 5),
        torch.arange(7, dtype=torch.int64),
        torch.tensor(3.5, dtype=torch.float64),
        torch.zeros(0, 4),
        torch.tensor([True, False]),
        torch.randn(4).to(torch.bfloat16),
    ],
)
def test_tensor_encoding_round_trip(tensor: torch.Tensor) -> None:
    back = decode_tensor(encode_tensor(tensor))
    assert back.dtype == tensor.dtype and back.shape == tensor.shape
    assert torch.equal(back, tensor)


@settings(max_examples=150, deadline=None)
@given(junk=st.binary(max_size=120))
def test_tensor_decoder_refuses_junk_cleanly(junk: bytes) -> None:
    try:
        decode_tensor(junk)
    except ProtocolError as exc:
        assert exc.code == "workers.tensor"


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, 40))
def test_tensor_decoder_refuses_truncation(cut: int) -> None:
    data = encode_tensor(torch.arange(6, dtype=torch.int32).reshape(2, 3))
    with pytest.raises(ProtocolError):
        decode_tensor(data[: len(data) - 1 - cut])


def test_into_variants_write_in_place_and_leave_nothing_on_failure() -> None:
    from cvfl.workers.buckets import open_bucket_into, seal_bucket_into, sealed_size

    out = bytearray(sealed_size(len(PAYLOAD)))
    seal_bucket_into(KEY, BIND, memoryview(PAYLOAD), memoryview(out), **AT)
    assert open_bucket(KEY, BIND, bytes(out), **AT) == PAYLOAD
    plain = bytearray(b"\xff" * len(PAYLOAD))
    open_bucket_into(KEY, BIND, out, memoryview(plain), **AT)
    assert bytes(plain) == PAYLOAD
    out[-1] ^= 1
    with pytest.raises(SealingError):
        open_bucket_into(KEY, BIND, out, memoryview(plain), **AT)
    assert bytes(plain) == bytes(len(PAYLOAD))  # zeroed: no unauthenticated plaintext left
    with pytest.raises(SealingError) as info:
        seal_bucket_into(KEY, BIND, PAYLOAD, memoryview(bytearray(10)), **AT)
    assert "record buffer size" in str(info.value)
    with pytest.raises(SealingError) as info:
        open_bucket_into(KEY, BIND, sealed(), memoryview(bytearray(8)), **AT)
    assert "payload size: expected 8" in str(info.value)
