"""Bytes a split-training job puts on the wire, computed from the bridge's message sizes.

Each training step carries one Forward (follower -> leader, the cut-layer activations) and one
Backward (leader -> follower, their gradient); each epoch ends with one Forward per evaluation
batch. Sizes are those of the serialized protobuf envelopes, the unit the bridge's Link counts;
gRPC's 5-byte frame header, HTTP/2 framing and TLS records add a little on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cvfl.train.schedule import Schedule
from cvfl.train.steps import EVAL, TRAIN, backward_message, forward_message
from cvfl.train.stream_schedule import StreamSchedule

_KEY = bytes(32)


@dataclass(frozen=True)
class WireFigures:
    """Byte counts of a training schedule: per direction, per step and for the whole job."""

    steps: int
    forward_bytes: int
    backward_bytes: int
    eval_bytes: int

    @property
    def forward_bytes_per_step(self) -> float:
        """Mean Forward (activations) bytes per training step."""
        return self.forward_bytes / self.steps if self.steps else 0.0

    @property
    def backward_bytes_per_step(self) -> float:
        """Mean Backward (gradient) bytes per training step."""
        return self.backward_bytes / self.steps if self.steps else 0.0

    @property
    def bytes_per_step(self) -> float:
        """Both directions of a mean training step."""
        return self.forward_bytes_per_step + self.backward_bytes_per_step

    @property
    def train_bytes(self) -> int:
        """Training traffic of the whole job."""
        return self.forward_bytes + self.backward_bytes

    @property
    def total_bytes(self) -> int:
        """Training and evaluation traffic of the whole job."""
        return self.train_bytes + self.eval_bytes


def _ids(rows: int) -> list[str]:
    return [str(i) for i in range(rows)]


def forward_size(step: int, phase: int, rows: int, width: int, name: str) -> int:
    """Serialized size of one Forward envelope (sequence numbers included)."""
    msg = forward_message(step, phase, _KEY, _ids(rows), name, torch.zeros(rows, width))
    msg.seq, msg.ack = 2 * step + 1, 2 * step
    return msg.ByteSize()


def backward_size(step: int, rows: int, width: int, name: str) -> int:
    """Serialized size of one Backward envelope."""
    msg = backward_message(step, _KEY, _ids(rows), f"{name}.grad", torch.zeros(rows, width))
    msg.seq, msg.ack = 2 * step + 1, 2 * step + 1
    return msg.ByteSize()


def wire_figures(schedule: Schedule | StreamSchedule, width: int, name: str) -> WireFigures:
    """Bytes per step and per job for ``schedule`` with a ``width``-wide float32 cut layer."""
    forward = backward = evals = steps = 0
    eval_sizes = [
        forward_size(i, EVAL, len(rows), width, name)
        for i, rows in enumerate(schedule.eval_batches())
    ]
    for step in schedule.steps():
        rows = len(step.rows)
        steps += 1
        forward += forward_size(step.number, TRAIN, rows, width, name)
        backward += backward_size(step.number, rows, width, name)
        if step.ends_epoch:
            evals += sum(eval_sizes)
    return WireFigures(steps, forward, backward, evals)
