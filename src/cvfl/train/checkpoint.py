"""Checkpoints: model and optimiser state at a step, in safetensors (no pickle), written atomically.

Optimiser state tensors are flattened under ``opt/<param index>/<key>``; hyper-parameters and
scalar state go to JSON metadata.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save
from torch import nn

from cvfl.errors import ModelError
from cvfl.models.export import decode_tensors


@dataclass(frozen=True)
class Checkpoint:
    """What a party restores: its step, model state and optimiser state."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    extra: dict[str, Any]
    rng: torch.Tensor | None = None
    binding: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(folder: Path, role: str, step: int) -> Path:
    """The file of ``role``'s checkpoint at ``step``."""
    return folder / f"{role}-step-{step:09d}.safetensors"


def encode(
    step: int,
    job_id: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any] | None = None,
    binding: dict[str, Any] | None = None,
    rng: torch.Generator | None = None,
) -> bytes:
    """Serialise a checkpoint (with ``rng``'s state, JSON ``extra`` and its binding).

    ``rng`` is the party's training generator (:mod:`cvfl.train.rng`); None records none.
    """
    tensors = {f"model/{k}": v.detach().clone() for k, v in model.state_dict().items()}
    if rng is not None:
        tensors["rng/torch"] = rng.get_state()
    state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt/{index}/{key}"] = value.detach().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {
        "step": step,
        "job_id": job_id,
        "param_groups": state["param_groups"],
        "scalars": scalars,
        "extra": extra or {},
        "binding": binding or {},
    }
    return st_save(tensors, metadata={"cvfl": json.dumps(meta)})


PURPOSE = "cvfl/checkpoint"


def _metadata(data: bytes, source: Path) -> dict[str, Any]:
    """The ``cvfl`` metadata from a safetensors header (read in memory: no temporary file)."""
    try:
        size = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8 : 8 + size])
        meta: dict[str, Any] = json.loads(header["__metadata__"]["cvfl"])
    except (struct.error, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{source}: checkpoint metadata missing", code="model.corrupt") from exc
    return meta


def decode(data: bytes, source: Path) -> Checkpoint:
    """Parse checkpoint bytes; errors name the file."""
    tensors = decode_tensors(data, source)
    meta = _metadata(data, source)
    model = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    optimizer = {"state": state, "param_groups": meta["param_groups"]}
    binding = meta.get("binding")
    return Checkpoint(
        int(meta["step"]),
        model,
        optimizer,
        dict(meta.get("extra", {})),
        tensors.get("rng/torch"),
        dict(binding) if isinstance(binding, dict) else {},
    )


def restore(
    ckpt: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    rng: torch.Generator | None = None,
) -> None:
    """Load a checkpoint's state into ``model``, ``optimizer`` and ``rng`` (None: left out).

    The global random state is never touched: the recorded generator state goes into ``rng``.
    """
    try:
        model.load_state_dict(ckpt.model)
        if optimizer is not None:
            optimizer.load_state_dict(ckpt.optimizer)
        if rng is not None and ckpt.rng is not None:
            rng.set_state(ckpt.rng)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelError(f"checkpoint does not fit the model: {exc}", code="model.shape") from exc
