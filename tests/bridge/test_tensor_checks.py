"""A tensor from the peer is finite, of a sane shape and exactly as long as it says, or refused."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvfl.bridge.serde import (
    MAX_TENSOR_DIMS,
    MAX_TENSOR_ELEMENTS,
    element_count,
    tensor_from_proto,
    tensor_to_proto,
)
from cvfl.errors import ProtocolError
from cvfl.train.steps import backward_message, forward_message, single_tensor
from cvfl.wire import bridge_pb2 as pb

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
NAMES = ["float32", "float64", "float16", "bfloat16", "int64", "int32"]
ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4}
KEY = b"k" * 32


def _refused(msg: pb.Tensor, code: str, **kwargs: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        tensor_from_proto(msg, **kwargs)
    assert info.value.code == code, info.value.message
    return info.value


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_values_are_refused(dtype: torch.dtype, bad: float) -> None:
    tensor = torch.zeros(4, 3, dtype=dtype)
    tensor[2, 1] = bad
    error = _refused(
        tensor_to_proto("act1_f", tensor), "protocol.nonfinite", where="forward message of step 7"
    )
    assert error.message.startswith("forward message of step 7: tensor 'act1_f'")
    nan, inf = (1, 0) if math.isnan(bad) else (0, 1)
    assert f"expected finite values, seen {nan} NaN and {inf} Inf among 12 values" in error.message


def test_finite_tensors_and_integers_pass() -> None:
    tensor = torch.tensor([[1.0, -2.5], [3.0e38, -3.0e38]])
    assert torch.equal(tensor_from_proto(tensor_to_proto("x", tensor)), tensor)
    ints = torch.tensor([0, -1, 2**62], dtype=torch.int64)
    assert torch.equal(tensor_from_proto(tensor_to_proto("ids", ints)), ints)


def test_forward_and_backward_name_message_step_and_tensor() -> None:
    act = torch.ones(2, 3)
    act[0, 0] = math.nan
    fwd = forward_message(5, pb.PHASE_EVAL, KEY, ["a", "b"], "act1_f", act).forward
    with pytest.raises(ProtocolError) as info:
        single_tensor(fwd, 2, 3)
    assert info.value.code == "protocol.nonfinite"
    assert "forward message of step 5 (eval): tensor 'act1_f'" in info.value.message
    grad = torch.ones(2, 3)
    grad[1, 2] = -math.inf
    bwd = backward_message(9, KEY, ["a", "b"], "act1_f.grad", grad).backward
    with pytest.raises(ProtocolError) as info:
        single_tensor(bwd, 2, 3)
    assert info.value.code == "protocol.nonfinite"
    assert "backward message of step 9: tensor 'act1_f.grad'" in info.value.message
    assert "seen 0 NaN and 1 Inf among 6 values" in info.value.message


@pytest.mark.parametrize(
    "shape",
    [
        [2**32, 2**32, 2**32],  # np.prod in int64 wraps this to 0
        [2**21, 2**21, 2**22],  # wraps to 2**64 = 0 as well
        [MAX_TENSOR_ELEMENTS, 2],
        [2**63 - 1],
    ],
)
def test_overflowing_shapes_are_refused_not_crashed(shape: list[int]) -> None:
    for data in (b"", b"\0" * 16):
        error = _refused(
            pb.Tensor(name="act", dtype="float32", shape=shape, data=data), "protocol.shape"
        )
        assert "expected" in error.message and "seen" in error.message


def test_zero_sized_dimension_may_be_large_only_up_to_the_limit() -> None:
    empty = tensor_from_proto(pb.Tensor(name="e", dtype="float32", shape=[0, 64], data=b""))
    assert empty.shape == (0, 64)
    _refused(pb.Tensor(name="e", dtype="float32", shape=[0, 2**40], data=b""), "protocol.shape")


@pytest.mark.parametrize("shape", [[-1], [2, -2], [-(2**63)], [-1, -1]])
def test_negative_dimensions_are_refused(shape: list[int]) -> None:
    error = _refused(
        pb.Tensor(name="act", dtype="float32", shape=shape, data=b"\0" * 4), "protocol.shape"
    )
    assert "dimension: expected 0.." in error.message


def test_rank_is_bounded() -> None:
    shape = [1] * (MAX_TENSOR_DIMS + 1)
    error = _refused(
        pb.Tensor(name="t", dtype="float32", shape=shape, data=b"\0" * 4), "protocol.shape"
    )
    assert f"rank: expected at most {MAX_TENSOR_DIMS}, seen {MAX_TENSOR_DIMS + 1}" in error.message


@pytest.mark.parametrize("length", [0, 23, 25, 48])
def test_byte_length_must_equal_dtype_size_times_count(length: int) -> None:
    msg = pb.Tensor(name="act", dtype="float32", shape=[2, 3], data=b"\0" * length)
    error = _refused(msg, "protocol.shape")
    assert f"data length: expected 24 bytes (6 x 4-byte float32), seen {length}" in error.message


def test_unknown_dtype_and_long_names_are_quoted_short() -> None:
    error = _refused(pb.Tensor(name="n" * 1000, dtype="complex" * 100, shape=[1]), "protocol.dtype")
    assert len(error.message) < 300 and "…" in error.message


def test_element_count_is_exact() -> None:
    assert element_count(()) == 1
    assert element_count((2**14, 2**14)) == 2**28
    with pytest.raises(ProtocolError):
        element_count((2**14, 2**14, 2))


_wild_dims = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_small_dims = st.integers(min_value=0, max_value=6)


@st.composite
def _tensor_protos(draw: st.DrawFn) -> pb.Tensor:
    """Arbitrary Tensor messages, mostly well-formed enough to reach the later checks."""
    wild = draw(st.integers(0, 9))  # 0: any dtype text, 1: any dims, 2: any bytes
    dtype = draw(st.text(max_size=8) if wild == 0 else st.sampled_from(NAMES))
    dims = _wild_dims | _small_dims if wild == 1 else _small_dims
    shape = draw(st.lists(dims, max_size=MAX_TENSOR_DIMS + 2 if wild == 1 else 3))
    count = math.prod(shape) if all(0 <= d <= 6 for d in shape) else 0
    if wild == 2 or dtype not in ITEMSIZE:
        data = draw(st.binary(max_size=64))
    else:
        size = max(0, count * ITEMSIZE[dtype] + draw(st.sampled_from([0, 0, 0, 0, -1, 1])))
        data = draw(st.binary(min_size=size, max_size=size))
        if dtype.startswith(("float", "bfloat")) and count and draw(st.booleans()):
            poison = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
            raw = torch.tensor([poison], dtype=getattr(torch, dtype)).view(torch.uint8)
            at = draw(st.integers(0, count - 1)) * ITEMSIZE[dtype]
            data = data[:at] + raw.numpy().tobytes() + data[at + ITEMSIZE[dtype] :]
    return pb.Tensor(name=draw(st.text(max_size=20)), dtype=dtype, shape=shape, data=data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=_tensor_protos())
def test_any_tensor_proto_decodes_finite_as_declared_or_is_a_protocol_error(msg: pb.Tensor) -> None:
    wire = pb.Tensor.FromString(msg.SerializeToString())
    try:
        tensor = tensor_from_proto(wire, where="backward message of step 1")
    except ProtocolError as exc:
        assert exc.code in {"protocol.dtype", "protocol.shape", "protocol.nonfinite"}
        assert exc.message.startswith("backward message of step 1: tensor ")
        return
    assert list(tensor.shape) == list(wire.shape)
    assert str(tensor.dtype) == f"torch.{wire.dtype}"
    assert tensor.element_size() * tensor.numel() == len(wire.data)
    if tensor.dtype.is_floating_point:
        assert bool(torch.isfinite(tensor).all())
