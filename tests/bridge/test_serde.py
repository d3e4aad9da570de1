from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvfl.bridge.serde import (
    Hello,
    TensorSpec,
    hello_from_proto,
    hello_to_proto,
    tensor_from_proto,
    tensor_to_proto,
)
from cvfl.errors import ProtocolError
from cvfl.wire import bridge_pb2 as pb

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(DTYPES),
    st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=3),
    st.integers(min_value=0, max_value=2**31),
)
def test_tensor_round_trip(dtype: torch.dtype, shape: list[int], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=gen) * 100).to(dtype)
    back = tensor_from_proto(pb.Tensor.FromString(tensor_to_proto("x", t).SerializeToString()))
    assert back.dtype == dtype and back.shape == t.shape
    assert torch.equal(back, t)


def test_tensor_bytes_are_raw_little_endian() -> None:
    msg = tensor_to_proto("x", torch.tensor([1.0, -2.0], dtype=torch.float32))
    assert msg.data == b"\x00\x00\x80?\x00\x00\x00\xc0"
    assert (msg.dtype, list(msg.shape)) == ("float32", [2])


@settings(max_examples=80, deadline=None)
@given(
    st.text(max_size=10),
    st.lists(st.integers(min_value=-3, max_value=1 << 40), max_size=4),
    st.binary(max_size=64),
)
def test_garbage_tensors_raise_protocol_error_only(
    dtype: str, shape: list[int], data: bytes
) -> None:
    msg = pb.Tensor(name="t", dtype=dtype, shape=shape, data=data)
    with contextlib.suppress(ProtocolError):
        tensor_from_proto(msg)


def test_wrong_byte_count_is_refused() -> None:
    msg = pb.Tensor(name="act", dtype="float32", shape=[2, 2], data=b"\0" * 12)
    with pytest.raises(ProtocolError, match="expected 16 bytes"):
        tensor_from_proto(msg)


def test_hello_round_trip() -> None:
    hello = Hello(
        protocol_version=1,
        job_id="j",
        role="follower",
        cut_layer=(TensorSpec("act1_f", "float32", (64,)),),
        batch_size=32,
        seed=9,
        id_order_fingerprint=b"\1" * 32,
        last_committed_step=5,
        nonce=b"\2" * 32,
        num_rows=100,
        schedule_digest=b"\3" * 32,
        software_version="0.1.0",
    )
    assert hello_from_proto(pb.Hello.FromString(hello_to_proto(hello).SerializeToString())) == hello
