"""The DDP communication hook that seals every gradient bucket before gloo carries it.

This CPU build of PyTorch has no TLS transport for gloo, so gradients never go to
``all_reduce``: each rank seals its flattened bucket (:mod:`cvfl.workers.buckets`), the sealed
records are all-gathered as uint8 tensors of equal length, and every rank opens every rank's
record, sums them in rank order (deterministic, identical on every rank) and divides by the
world size. A record that does not open raises :class:`SealingError` (``workers.bucket``) from
the hook, which propagates out of ``loss.backward()``: the step stops on every rank.
"""

# No ``from __future__ import annotations`` here: DDP checks the hook's annotations at runtime
# (``bucket`` must be ``dist.GradBucket``, the result ``torch.futures.Future[torch.Tensor]``).

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch._C._distributed_c10d import GradBucket  # what dist.GradBucket is

from cvfl.workers.buckets import (
    BUCKET_LABEL,
    Binding,
    open_bucket_into,
    seal_bucket_into,
    sealed_size,
)

Tamper = Callable[[int, int, bytes], bytes]


class BucketHook:
    """The state of the sealed all-gather hook of one DDP model.

    Attributes:
        step: How many buckets this rank has reduced (every rank counts the same calls in the
            same order, so the counters agree); bound into every record.
        tamper: Test seam only: ``tamper(step, bucket_index, sealed) -> sealed`` is applied to
            this rank's record before it is sent (it must keep the length).
    """

    def __init__(self, key: bytes, *, job_id: str, role: str, rank: int, world_size: int) -> None:
        self._key = key
        self.binding = Binding(BUCKET_LABEL, job_id, role, world_size)
        self.rank = rank
        self.world_size = world_size
        self.step = 0
        self.tamper: Tamper | None = None

    def __repr__(self) -> str:
        return f"BucketHook(rank={self.rank}, world_size={self.world_size}, step={self.step})"

    def reduce(self, buffer: torch.Tensor, index: int) -> torch.Tensor:
        """Seal, all-gather, open and average one flattened bucket; return the mean."""
        step = self.step
        self.step += 1
        flat = buffer.detach().contiguous().view(-1)
        size = flat.numel() * flat.element_size()
        send = torch.empty(sealed_size(size), dtype=torch.uint8)
        seal_bucket_into(
            self._key,
            self.binding,
            _bytes_of(flat),
            _bytes_of(send),
            sender=self.rank,
            step=step,
            index=index,
        )
        if self.tamper is not None:
            tampered = self.tamper(step, index, send.numpy().tobytes())
            send = torch.frombuffer(bytearray(tampered), dtype=torch.uint8)
        received = [torch.empty_like(send) for _ in range(self.world_size)]
        dist.all_gather(received, send)
        total = torch.empty_like(flat)
        part = torch.empty_like(flat)
        for sender, record in enumerate(received):
            into = total if sender == 0 else part
            open_bucket_into(
                self._key,
                self.binding,
                _bytes_of(record),
                _bytes_of(into),
                sender=sender,
                step=step,
                index=index,
            )
            if sender > 0:
                total.add_(part)
        return total.div_(self.world_size).view_as(buffer)


def _bytes_of(tensor: torch.Tensor) -> memoryview:
    """A writable byte view of a contiguous CPU tensor's storage (no copy)."""
    return tensor.view(torch.uint8).numpy().data.cast("B")


def all_gather_bytes(data: bytes, world_size: int) -> list[bytes]:
    """All-gather equal-length byte strings through the default process group, in rank order."""
    send = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    received = [torch.empty_like(send) for _ in range(world_size)]
    dist.all_gather(received, send)
    return [t.numpy().tobytes() for t in received]


def sealed_allgather_hook(
    state: BucketHook, bucket: GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: the bucket's sealed all-gather mean, as a completed future."""
    result = state.reduce(bucket.buffer(), bucket.index())
    future: torch.futures.Future[torch.Tensor] = torch.futures.Future()
    future.set_result(result)
    return future
