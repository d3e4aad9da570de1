"""Pure conversions between cvfl's session values and the bridge's protobuf messages.

Tensors travel as raw little-endian bytes plus dtype and shape: never pickle, never compression.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from cvfl.errors import ProtocolError
from cvfl.wire import bridge_pb2 as pb

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
MAX_TENSOR_ELEMENTS = 1 << 28

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("cvfl's wire format assumes a little-endian host")


@dataclass(frozen=True)
class TensorSpec:
    """A declared tensor: name, dtype name and shape without the batch dimension."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def describe(self) -> str:
        """Human-readable form, e.g. ``act1_f float32 [64]``."""
        return f"{self.name} {self.dtype} {list(self.shape)}"


@dataclass(frozen=True)
class CheckpointState:
    """A checkpoint a party holds: step, plaintext digest, and the peer's digest once committed."""

    step: int
    digest: bytes
    peer_digest: bytes = b""


@dataclass(frozen=True)
class Hello:
    """What each side declares before any data moves (DESIGN.md §5)."""

    protocol_version: int
    job_id: str
    role: str
    cut_layer: tuple[TensorSpec, ...]
    batch_size: int
    seed: int
    id_order_fingerprint: bytes
    last_committed_step: int
    nonce: bytes
    num_rows: int
    schedule_digest: bytes
    software_version: str
    checkpoints: tuple[CheckpointState, ...] = ()
    workers: int = 1
    worker: int = 0
    terms: bytes = b""


def dtype_name(dtype: torch.dtype) -> str:
    """The wire name of a torch dtype."""
    try:
        return _NAMES[dtype]
    except KeyError:
        raise ProtocolError(f"unsupported tensor dtype {dtype}", code="protocol.dtype") from None


def tensor_to_proto(name: str, tensor: torch.Tensor) -> pb.Tensor:
    """Encode a tensor as raw little-endian bytes."""
    t = tensor.detach().contiguous()
    if t.dtype == torch.bfloat16:
        data = t.view(torch.int16).numpy().tobytes()
    else:
        data = t.numpy().tobytes()
    return pb.Tensor(name=name, dtype=dtype_name(t.dtype), shape=list(t.shape), data=data)


def tensor_from_proto(msg: pb.Tensor) -> torch.Tensor:
    """Decode a tensor, checking dtype, shape and byte length."""
    dtype = _DTYPES.get(msg.dtype)
    if dtype is None:
        raise ProtocolError(
            f"tensor {msg.name!r}: unsupported dtype {msg.dtype!r}", code="protocol.dtype"
        )
    shape = tuple(int(d) for d in msg.shape)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if any(d < 0 for d in shape) or count > MAX_TENSOR_ELEMENTS:
        raise ProtocolError(f"tensor {msg.name!r}: bad shape {list(shape)}", code="protocol.shape")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(msg.data) != count * itemsize:
        raise ProtocolError(
            f"tensor {msg.name!r}: expected {count * itemsize} bytes for {list(shape)} "
            f"{msg.dtype}, seen {len(msg.data)}",
            code="protocol.shape",
        )
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(bytearray(msg.data), dtype=dtype)
    return raw.reshape(shape)


def spec_to_proto(spec: TensorSpec) -> pb.TensorSpec:
    """Encode a tensor spec."""
    return pb.TensorSpec(name=spec.name, dtype=spec.dtype, shape=list(spec.shape))


def spec_from_proto(msg: pb.TensorSpec) -> TensorSpec:
    """Decode a tensor spec."""
    return TensorSpec(msg.name, msg.dtype, tuple(int(d) for d in msg.shape))


def hello_to_proto(hello: Hello) -> pb.Hello:
    """Encode a hello."""
    return pb.Hello(
        protocol_version=hello.protocol_version,
        job_id=hello.job_id,
        role=hello.role,
        cut_layer=[spec_to_proto(s) for s in hello.cut_layer],
        batch_size=hello.batch_size,
        seed=hello.seed,
        id_order_fingerprint=hello.id_order_fingerprint,
        last_committed_step=hello.last_committed_step,
        nonce=hello.nonce,
        num_rows=hello.num_rows,
        schedule_digest=hello.schedule_digest,
        software_version=hello.software_version,
        checkpoints=[
            pb.CheckpointState(step=c.step, digest=c.digest, peer_digest=c.peer_digest)
            for c in hello.checkpoints
        ],
        workers=hello.workers,
        worker=hello.worker,
        terms=hello.terms,
    )


def hello_from_proto(msg: pb.Hello) -> Hello:
    """Decode a hello."""
    return Hello(
        protocol_version=msg.protocol_version,
        job_id=msg.job_id,
        role=msg.role,
        cut_layer=tuple(spec_from_proto(s) for s in msg.cut_layer),
        batch_size=msg.batch_size,
        seed=msg.seed,
        id_order_fingerprint=bytes(msg.id_order_fingerprint),
        last_committed_step=msg.last_committed_step,
        nonce=bytes(msg.nonce),
        num_rows=msg.num_rows,
        schedule_digest=bytes(msg.schedule_digest),
        software_version=msg.software_version,
        checkpoints=tuple(
            CheckpointState(c.step, bytes(c.digest), bytes(c.peer_digest)) for c in msg.checkpoints
        ),
        workers=msg.workers,
        worker=msg.worker,
        terms=bytes(msg.terms),
    )
