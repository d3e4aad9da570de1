"""Message-level pieces of a training step shared by the two loops."""

from __future__ import annotations

import numpy as np
import torch

from cvfl.bridge.serde import tensor_from_proto, tensor_to_proto
from cvfl.data.ids import batch_mac, macs_equal
from cvfl.errors import ProtocolError, mismatch
from cvfl.wire import bridge_pb2 as pb

TRAIN = pb.PHASE_TRAIN
EVAL = pb.PHASE_EVAL
WIRE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def wire_dtype(name: str) -> torch.dtype:
    """The torch dtype of ``[train] wire_dtype`` (cut-layer tensors on the wire)."""
    return WIRE_DTYPES[name]


def forward_message(
    step: int,
    phase: int,
    key: bytes,
    ids: list[str],
    name: str,
    act: torch.Tensor,
    wire: torch.dtype = torch.float32,
) -> pb.Envelope:
    """The follower's activations for one batch, sent as ``wire`` (``[train] wire_dtype``)."""
    return pb.Envelope(
        forward=pb.Forward(
            step=step,
            phase=phase,  # type: ignore[arg-type]
            ids_mac=batch_mac(key, step, phase, ids),
            tensors=[tensor_to_proto(name, act.detach().to(device="cpu", dtype=wire))],
        )
    )


def backward_message(
    step: int,
    key: bytes,
    ids: list[str],
    name: str,
    grad: torch.Tensor,
    wire: torch.dtype = torch.float32,
) -> pb.Envelope:
    """The leader's cut-layer gradient for one batch, sent as ``wire``."""
    return pb.Envelope(
        backward=pb.Backward(
            step=step,
            ids_mac=batch_mac(key, step, TRAIN, ids),
            tensors=[tensor_to_proto(name, grad.detach().to(device="cpu", dtype=wire))],
        )
    )


def check_batch(kind: str, step: int, seen_step: int, mac: bytes, expected_mac: bytes) -> None:
    """Refuse a message for another step or for other rows."""
    if seen_step != step:
        raise ProtocolError(mismatch(f"{kind} step", step, seen_step), code="protocol.step")
    if not macs_equal(mac, expected_mac):
        raise ProtocolError(
            f"misaligned batch at {kind} step {step}: the keyed hash of the batch's example ids "
            "differs between the parties (their rows are not aligned)",
            code="protocol.misaligned",
        )


def single_tensor(
    message: pb.Forward | pb.Backward | pb.Activations,
    rows: int,
    width: int,
    wire: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Decode the one finite ``(rows, width)`` tensor a forward or backward must carry.

    It must arrive as ``wire`` (the agreed ``[train] wire_dtype``) and is returned as float32.

    Raises:
        ProtocolError: not exactly one tensor, another dtype or shape (``protocol.shape``), a
            malformed tensor, or NaN/Inf values (``protocol.nonfinite``); the message names the
            message type, the step and the tensor.
    """
    where = describe(message)
    items = list(message.tensors)
    if len(items) != 1:
        raise ProtocolError(
            mismatch(f"{where}: tensors per message", 1, len(items)), code="protocol.shape"
        )
    tensor = tensor_from_proto(items[0], where=where)
    if tensor.dtype != wire or tuple(tensor.shape) != (rows, width):
        raise ProtocolError(
            mismatch(
                f"{where}: tensor {items[0].name[:64]}",
                f"{str(wire).removeprefix('torch.')} [{rows}, {width}]",
                f"{items[0].dtype} {list(tensor.shape)}",
            ),
            code="protocol.shape",
        )
    return tensor.float()


def describe(message: pb.Forward | pb.Backward | pb.Activations) -> str:
    """Name a message for a refusal: ``forward message of step 3 (eval)``."""
    if isinstance(message, pb.Activations):
        return f"activations of batch {message.batch}"
    if isinstance(message, pb.Forward):
        phase = pb.Phase.Name(message.phase) if message.phase in pb.Phase.values() else "?"
        return f"forward message of step {message.step} ({phase.removeprefix('PHASE_').lower()})"
    return f"backward message of step {message.step}"


def assign_message(step: int, rows: np.ndarray) -> pb.Envelope:
    """The leader's assignment of one step's rows (positions in the aligned table) to a pair."""
    return pb.Envelope(assign=pb.Assign(step=step, rows=rows.astype("<i8").tobytes()))


def assigned_rows(assign: pb.Assign, step: int, limit: int, train_mask: np.ndarray) -> np.ndarray:
    """Decode and check the rows the leader assigned for ``step``.

    Raises:
        ProtocolError: another step, a malformed payload, more than ``limit`` rows, or a row that
            is not a training row of this table.
    """
    if assign.step != step:
        raise ProtocolError(mismatch("assigned step", step, assign.step), code="protocol.step")
    if len(assign.rows) % 8:
        raise ProtocolError(
            mismatch(f"assignment of step {step}", "whole int64 row positions", len(assign.rows)),
            code="protocol.assign",
        )
    rows = np.frombuffer(assign.rows, dtype="<i8").astype(np.int64)
    if len(rows) > limit:
        raise ProtocolError(
            mismatch(f"rows assigned in step {step}", f"at most {limit}", len(rows)),
            code="protocol.assign",
        )
    bad = (rows < 0) | (rows >= len(train_mask))
    if not bad.any():
        bad = ~train_mask[rows]
    if bad.any():
        raise ProtocolError(
            mismatch(
                f"row assigned in step {step}",
                f"a training row of the {len(train_mask)}-row aligned table",
                int(rows[np.argmax(bad)]),
            ),
            code="protocol.assign",
        )
    return rows
