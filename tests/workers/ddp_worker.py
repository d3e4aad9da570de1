"""The body of one worker in the 2-process gloo tests (run by torch.multiprocessing.spawn).

Each rank records what it observed into ``<out>/rank<r>.json``; the test asserts on both files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import cvfl.workers.hook as hook_module
from cvfl.bridge.security import PlaintextSecurity
from cvfl.errors import CvflError
from cvfl.workers import WorkerContext, join_group
from cvfl.workers.buckets import HEADER_SIZE, OVERHEAD, seal_bucket_into

WORLD = 2
LOCAL_BATCH = 4
STEPS = 3
LR = 0.1


def make_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3), torch.nn.Linear(3, 1)
    ).to(torch.float64)


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(123)
    return [
        (
            torch.randn(WORLD * LOCAL_BATCH, 5, generator=gen, dtype=torch.float64),
            torch.randn(WORLD * LOCAL_BATCH, 1, generator=gen, dtype=torch.float64),
        )
        for _ in range(STEPS)
    ]


def train(model: torch.nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for x, y in data:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()  # type: ignore[no-untyped-call]
        opt.step()


def reference() -> list[list[float]]:
    model = make_model(seed=0)
    train(model, batches())
    return [p.detach().reshape(-1).tolist() for p in model.parameters()]


class Recorder:
    """Wraps the collectives and the sealing call to record what goes on gloo's wire."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.plain: list[bytes] = []
        self.gather_sizes: list[int] = []
        real_gather, real_broadcast = dist.all_gather, dist.broadcast
        real_seal = seal_bucket_into  # what cvfl.workers.hook calls

        def all_gather(out: list[torch.Tensor], tensor: torch.Tensor, *a: Any, **k: Any) -> Any:
            self.sent.append(tensor.numpy().tobytes())
            return real_gather(out, tensor, *a, **k)

        def broadcast(tensor: torch.Tensor, *a: Any, **k: Any) -> Any:
            result = real_broadcast(tensor, *a, **k)
            self.sent.append(tensor.numpy().tobytes())  # what rank 0 sent, as received
            return result

        def seal(key: bytes, binding: Any, payload: memoryview, out: memoryview, **k: Any) -> None:
            self.plain.append(bytes(payload))
            self.gather_sizes.append(out.nbytes)
            real_seal(key, binding, payload, out, **k)

        dist.all_gather, dist.broadcast = all_gather, broadcast  # type: ignore[assignment]
        # hook imported the name without re-exporting it: patch its module globals
        vars(hook_module)["seal_bucket_into"] = seal

    def leaks(self, extra: bytes = b"") -> int:
        """How many 16-byte windows of any plaintext bucket appear in what was sent."""
        wire = b"\x00".join([*self.sent, extra])
        return sum(p[i : i + 16] in wire for p in self.plain for i in range(0, len(p) - 15, 8))


def run(rank: int, out: str, master_port: int, enrol_port: int) -> None:
    ctx = WorkerContext(rank, WORLD, "127.0.0.1", master_port, enrol_port)
    group = join_group(
        ctx,
        PlaintextSecurity(),
        job_id="job-w",
        role="leader",
        timeout=30.0,
        party_key=bytes(32),
    )
    result: dict[str, Any] = {}
    recorder = Recorder()
    model = make_model(seed=rank)  # rank 0's parameters must reach rank 1 (sealed broadcast)
    initial = b"".join(p.detach().numpy().tobytes() for p in make_model(seed=0).parameters())
    ddp = group.wrap(model, bucket_cap_mb=0.0001)  # several buckets
    lo = rank * LOCAL_BATCH
    train(ddp, [(x[lo : lo + LOCAL_BATCH], y[lo : lo + LOCAL_BATCH]) for x, y in batches()])
    result["params"] = [p.detach().reshape(-1).tolist() for p in model.parameters()]
    result["reference"] = reference()
    result["hook_steps"] = group.hook_state.step
    result["buckets"] = len(recorder.plain)
    result["bucket_sizes_ok"] = all(
        size == len(p) + OVERHEAD
        for size, p in zip(recorder.gather_sizes, recorder.plain, strict=True)
    )
    result["leaks"] = recorder.leaks()
    result["control_leaks"] = recorder.leaks(extra=recorder.plain[-1])  # the detector detects
    result["sent_bytes"] = sum(len(s) for s in recorder.sent)
    result["plain_bytes"] = sum(len(p) for p in recorder.plain)
    result["initial_params_in_clear"] = any(
        initial[i : i + 16] in b"".join(recorder.sent) for i in range(0, len(initial) - 15, 8)
    )

    mine = torch.arange((rank + 1) * 3, dtype=torch.float32).reshape(rank + 1, 3) + 100 * rank
    result["gathered"] = [t.tolist() for t in group.all_gather(mine, what="scores")]
    group.agree(b"same fingerprint", what="fingerprint")
    result["agree_refusal"] = _error(lambda: group.agree(bytes([rank]) * 12, what="resume step"))
    odd = torch.zeros(1, 3 + rank)
    result["shape_refusal"] = _error(lambda: group.all_gather(odd, what="bad"))

    if rank == 1:

        def tamper(step: int, index: int, sealed: bytes) -> bytes:
            flipped = bytearray(sealed)
            flipped[HEADER_SIZE + 3] ^= 0x40
            result["tampered"] = [step, index]
            return bytes(flipped)

        group.hook_state.tamper = tamper
    x, y = batches()[0]
    loss = torch.nn.functional.mse_loss(ddp(x[lo : lo + LOCAL_BATCH]), y[lo : lo + LOCAL_BATCH])
    result["tamper"] = _error(loss.backward)
    group.close()
    group.close()
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    # After a backward that a refused bucket stopped, gloo's threads can make the interpreter's
    # teardown abort (std::terminate on a joinable thread: about 1 run in 4 here, on either
    # rank, always after both results were written). Leave without that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _error(action: Any) -> dict[str, str] | None:
    try:
        action()
    except CvflError as exc:
        return {"type": type(exc).__name__, "code": exc.code, "message": exc.message}
    return None
