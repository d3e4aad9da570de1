"""The secure worker group of one party: attested enrolment, then gloo with sealed traffic.

:func:`join_group` enrols this worker (:mod:`cvfl.workers.enrol`), and only then initialises
the gloo process group. :class:`SecureGroup` offers the collectives training needs, each sealed
under the group key: the DDP gradient hook, an all-gather of tensors, an agreement check, a
sealed broadcast of a module's state, and a barrier.
"""

from __future__ import annotations

import datetime as dt
import hmac
import warnings
from typing import Unpack

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from cvfl.bridge.security import ChannelSecurity
from cvfl.errors import ConfigError, PeerUnavailableError, ProtocolError, mismatch
from cvfl.logs import get_logger
from cvfl.workers.buckets import Binding, open_bucket, seal_bucket
from cvfl.workers.context import WorkerContext, host_for_target
from cvfl.workers.enrol import Enrolment, enrol_group
from cvfl.workers.hook import BucketHook, all_gather_bytes, sealed_allgather_hook
from cvfl.workers.tensors import decode_tensor, encode_tensor

log = get_logger(__name__)

SHOWN_BYTES = 8  # how much of a disagreeing value an error shows (hex)


def join_group(
    ctx: WorkerContext, security: ChannelSecurity, **enrolment: Unpack[Enrolment]
) -> SecureGroup:
    """Attest, agree the group key, then initialise the gloo process group.

    Rank 0 serves enrolment through ``security`` until every other rank enrolled (see
    :func:`cvfl.workers.enrol.enrol_group`); then every rank calls
    ``torch.distributed.init_process_group("gloo", ...)`` on ``ctx.master_addr:master_port``.
    With ``world_size == 1`` nothing touches the network and no process group is created.
    ``enrolment`` is ``job_id``, ``role``, ``timeout`` and ``party_key`` (:class:`Enrolment`).

    Raises:
        ProtocolError: rank 0 refused an enrolment (job, role, world size or rank).
        ConfigError: several workers but no party key (see :func:`enrol_group`).
        AttestationError: the channel refused a worker's evidence.
        PeerUnavailableError: a rank did not enrol, rank 0 was unreachable, or gloo's
            rendezvous failed, within ``timeout`` seconds.
    """
    key = enrol_group(ctx, security, **enrolment)
    timeout, job_id, role = enrolment["timeout"], enrolment["job_id"], enrolment["role"]
    if ctx.world_size > 1:
        if dist.is_initialized():
            raise ConfigError(
                mismatch("torch.distributed", "not initialised yet", "already initialised"),
                code="workers.already_initialised",
            )
        init_method = f"tcp://{host_for_target(ctx.master_addr)}:{ctx.master_port}"
        try:
            dist.init_process_group(
                "gloo",
                init_method=init_method,
                rank=ctx.rank,
                world_size=ctx.world_size,
                timeout=dt.timedelta(seconds=timeout),
            )
        except RuntimeError as exc:  # torch's DistError/DistStoreError are RuntimeErrors
            raise PeerUnavailableError(
                f"rank {ctx.rank}: the gloo rendezvous at {init_method} failed within "
                f"{timeout:g} s ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                code="workers.rendezvous",
            ) from None
        log.info("workers: rank %d of %d joined the gloo group", ctx.rank, ctx.world_size)
    return SecureGroup(ctx, key, job_id=job_id, role=role)


class SecureGroup:
    """A party's worker group whose traffic is sealed under a per-run key.

    Attributes:
        rank: This worker's rank.
        world_size: The number of workers.
        hook_state: The DDP hook's state (its step counter; a ``tamper`` seam for tests).
    """

    def __init__(self, ctx: WorkerContext, key: bytes, *, job_id: str, role: str) -> None:
        self.rank = ctx.rank
        self.world_size = ctx.world_size
        self._key = key
        self._job_id = job_id
        self._role = role
        self._collectives = 0
        self._closed = False
        self.hook_state = BucketHook(
            key, job_id=job_id, role=role, rank=ctx.rank, world_size=ctx.world_size
        )

    def __repr__(self) -> str:
        return f"SecureGroup(rank={self.rank}, world_size={self.world_size})"

    def __enter__(self) -> SecureGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_hook(self, ddp: DistributedDataParallel) -> None:
        """Make ``ddp`` reduce gradients through the sealed all-gather hook.

        Construct the model with ``init_sync=False`` and ``broadcast_buffers=False`` (those
        collectives would carry parameters and buffers in the clear) and call
        :meth:`broadcast_module` instead; :meth:`wrap` does all three.

        Raises:
            ConfigError: the group has one worker (there is nothing to reduce; train the plain
                module).
        """
        self._need_group("register_hook")
        ddp.register_comm_hook(self.hook_state, sealed_allgather_hook)

    def wrap(self, module: torch.nn.Module, **ddp_options: object) -> DistributedDataParallel:
        """Return ``module`` wrapped in DDP with the sealed hook and rank 0's state, sealed.

        The DDP's own parameter broadcast and buffer syncs (clear collectives) are switched off;
        rank 0's parameters and buffers reach the others through :meth:`broadcast_module`.
        """
        self._need_group("wrap")
        options: dict[str, object] = {
            **ddp_options,
            "init_sync": False,
            "broadcast_buffers": False,
        }
        with warnings.catch_warnings():  # broadcast_buffers=False is what we mean (no sync)
            warnings.filterwarnings("ignore", message=".*broadcast_buffers", category=FutureWarning)
            ddp = DistributedDataParallel(module, **options)  # type: ignore[arg-type]
        self.broadcast_module(module)
        self.register_hook(ddp)
        return ddp

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers into ``module`` on every rank, sealed."""
        if self.world_size == 1:
            return
        tensors = [*module.parameters(), *module.buffers()]
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
            got = self._broadcast(flat if self.rank == 0 else None, what="module-state")
            offset = 0
            for t in tensors:
                n = t.numel()
                t.copy_(got[offset : offset + n].view_as(t).to(t.dtype))
                offset += n

    def all_gather(self, tensor: torch.Tensor, *, what: str) -> list[torch.Tensor]:
        """Sealed all-gather: every rank's tensor, in rank order.

        The first dimension may differ per rank; dtype and trailing shape must agree.

        Raises:
            ProtocolError: a rank's tensor has another dtype or trailing shape
                (``workers.gather_shape``).
            SealingError: a record did not open (``workers.bucket``).
        """
        if self.world_size == 1:
            return [tensor.detach().clone()]
        step = self._next()
        binding = Binding(f"gather:{what}", self._job_id, self._role, self.world_size)
        sealed = seal_bucket(
            self._key, binding, encode_tensor(tensor), sender=self.rank, step=step, index=0
        )
        records = _all_gather_varlen(sealed, self.world_size)
        out = []
        for sender, record in enumerate(records):
            plain = open_bucket(self._key, binding, record, sender=sender, step=step, index=0)
            got = decode_tensor(plain)
            _check_like(tensor, got, sender, what)
            out.append(got)
        return out

    def agree(self, value: bytes, *, what: str) -> None:
        """Refuse unless every rank holds the same ``value``.

        Raises:
            ProtocolError: code ``workers.disagree``, naming the ranks that differ, rank 0's
                value (expected) and theirs (seen), hex and shortened.
        """
        if self.world_size == 1:
            return
        mine = torch.frombuffer(bytearray(value), dtype=torch.uint8) if value else _empty_u8()
        values = [t.numpy().tobytes() for t in self.all_gather(mine, what=f"agree:{what}")]
        differ = [r for r, v in enumerate(values) if not hmac.compare_digest(v, values[0])]
        if differ:
            seen = ", ".join(f"rank {r}: {_short(values[r])}" for r in differ)
            raise ProtocolError(
                f"workers disagree on {what} (ranks {differ} differ from rank 0): "
                + mismatch(what, _short(values[0]), seen),
                code="workers.disagree",
            )

    def barrier(self) -> None:
        """Wait until every rank reached this point."""
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
            log.info("workers: rank %d left the group", self.rank)

    def _broadcast(self, tensor: torch.Tensor | None, *, what: str) -> torch.Tensor:
        step = self._next()
        binding = Binding(f"broadcast:{what}", self._job_id, self._role, self.world_size)
        record = b""
        if tensor is not None:
            record = seal_bucket(
                self._key, binding, encode_tensor(tensor), sender=0, step=step, index=0
            )
        size = torch.tensor([len(record)], dtype=torch.int64)
        dist.broadcast(size, src=0)
        data = torch.frombuffer(bytearray(record), dtype=torch.uint8) if record else None
        if data is None:
            data = torch.empty(int(size.item()), dtype=torch.uint8)
        dist.broadcast(data, src=0)
        plain = open_bucket(
            self._key, binding, data.numpy().tobytes(), sender=0, step=step, index=0
        )
        return decode_tensor(plain)

    def _next(self) -> int:
        self._collectives += 1
        return self._collectives - 1

    def _need_group(self, what: str) -> None:
        if self.world_size == 1:
            raise ConfigError(
                mismatch(f"world size for {what}", "at least 2 (DDP needs a group)", 1),
                code="workers.single",
            )
        if self._closed:
            raise ConfigError(f"{what}: the worker group is closed", code="workers.closed")


def _all_gather_varlen(data: bytes, world_size: int) -> list[bytes]:
    """All-gather byte strings of different lengths (the lengths travel in the clear)."""
    size = torch.tensor([len(data)], dtype=torch.int64)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    lengths = [int(s.item()) for s in sizes]
    padded = data + bytes(max(lengths) - len(data))
    return [raw[:n] for raw, n in zip(all_gather_bytes(padded, world_size), lengths, strict=True)]


def _check_like(mine: torch.Tensor, got: torch.Tensor, sender: int, what: str) -> None:
    if got.dtype != mine.dtype or got.dim() != mine.dim() or got.shape[1:] != mine.shape[1:]:
        raise ProtocolError(
            f"all-gather of {what}: "
            + mismatch(
                f"rank {sender}'s dtype and trailing shape",
                f"{mine.dtype} {tuple(mine.shape[1:])}",
                f"{got.dtype} {tuple(got.shape[1:])}",
            ),
            code="workers.gather_shape",
        )


def _short(value: bytes) -> str:
    text = value[:SHOWN_BYTES].hex()
    return text + "…" if len(value) > SHOWN_BYTES else text or "(empty)"


def _empty_u8() -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8)
