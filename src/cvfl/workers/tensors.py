"""Tensors as bytes for sealed collectives: dtype, shape and raw little-endian data.

Layout: ``u8 len || dtype name (ASCII, e.g. "float32") || u8 ndim || ndim x u64 dims (big-endian)
|| data``. Only the dtypes in :data:`DTYPES` are accepted; no pickle.
"""

from __future__ import annotations

import struct
import sys

import torch

from cvfl.errors import ProtocolError, mismatch

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}
MAX_NDIM = 16
MAX_DIM = 2**40


def encode_tensor(tensor: torch.Tensor) -> bytes:
    """Encode ``tensor`` (any shape, a dtype of :data:`DTYPES`) as bytes."""
    name = _NAMES.get(tensor.dtype)
    if name is None:
        raise ProtocolError(
            mismatch("tensor dtype", "one of " + ", ".join(DTYPES), tensor.dtype),
            code="workers.tensor",
        )
    if tensor.dim() > MAX_NDIM:
        raise ProtocolError(
            mismatch("tensor rank", f"at most {MAX_NDIM}", tensor.dim()), code="workers.tensor"
        )
    flat = tensor.detach().cpu().contiguous().view(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    if sys.byteorder != "little" and flat.element_size() > 1:  # pragma: no cover - x86/arm only
        raise ProtocolError("big-endian hosts are not supported", code="workers.tensor")
    raw = name.encode()
    head = (
        struct.pack(">B", len(raw))
        + raw
        + struct.pack(f">B{tensor.dim()}Q", tensor.dim(), *tensor.shape)
    )
    return head + data


def decode_tensor(data: bytes) -> torch.Tensor:
    """Decode what :func:`encode_tensor` wrote.

    Raises:
        ProtocolError: the bytes are not a well-formed tensor encoding (code ``workers.tensor``).
    """
    try:
        (name_len,) = struct.unpack_from(">B", data, 0)
        name = data[1 : 1 + name_len].decode("ascii")
        offset = 1 + name_len
        (ndim,) = struct.unpack_from(">B", data, offset)
        if ndim > MAX_NDIM:
            raise ProtocolError(
                mismatch("tensor rank", f"at most {MAX_NDIM}", ndim), code="workers.tensor"
            )
        shape = struct.unpack_from(f">{ndim}Q", data, offset + 1)
        offset += 1 + 8 * ndim
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed tensor encoding: {exc}", code="workers.tensor") from None
    if any(dim > MAX_DIM for dim in shape):
        raise ProtocolError(
            mismatch("tensor dimension", f"at most {MAX_DIM}", max(shape)), code="workers.tensor"
        )
    dtype = DTYPES.get(name)
    if dtype is None:
        raise ProtocolError(
            mismatch("tensor dtype", "one of " + ", ".join(DTYPES), name), code="workers.tensor"
        )
    count = 1
    for dim in shape:
        count *= dim
    size = count * torch.empty(0, dtype=dtype).element_size()
    if len(data) - offset != size:
        raise ProtocolError(
            mismatch("tensor data size", size, len(data) - offset), code="workers.tensor"
        )
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).view(dtype)
    return flat.view(shape)
