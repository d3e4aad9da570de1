"""Exported model halves: safetensors weights plus a JSON spec, and a parameter fingerprint.

Nothing here unpickles. The fingerprint is a SHA-256 over the parameters in canonical order
(sorted names; name, dtype, shape and raw little-endian bytes of each), so it is the same whatever
container the tensors sit in.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from cvfl.errors import ModelError, SealingError, mismatch
from cvfl.sealing.artifacts import SUFFIX, Artifacts, locate, read_artifact
from cvfl.sealing.keys import KeyProvider

FORMAT = "cvfl-half/v1"
WEIGHTS_PURPOSE = "cvfl/export/weights"
SPEC_PURPOSE = "cvfl/export/spec"


@dataclass(frozen=True)
class ExportedHalf:
    """A loaded export: its tensors and its JSON spec."""

    tensors: dict[str, torch.Tensor]
    spec: dict[str, Any]


def parameter_fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the tensors in canonical order."""
    h = hashlib.sha256(b"cvfl/params/v1")
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = name.encode()
        dtype = str(t.dtype).removeprefix("torch.").encode()
        h.update(struct.pack("<I", len(raw)) + raw + struct.pack("<I", len(dtype)) + dtype)
        h.update(struct.pack("<I", t.dim()) + struct.pack(f"<{t.dim()}q", *t.shape))
        data = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        h.update(data.numpy().tobytes())
    return h.hexdigest()


def module_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's parameters and persistent buffers, detached."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def encode_half(module: nn.Module, spec: Mapping[str, Any]) -> tuple[bytes, bytes, str]:
    """Serialise ``module`` to (safetensors bytes, JSON spec bytes, fingerprint)."""
    tensors = module_tensors(module)
    fingerprint = parameter_fingerprint(tensors)
    full = {"format": FORMAT, **spec, "fingerprint": fingerprint}
    weights = st_save(tensors, metadata={"format": FORMAT})
    return weights, json.dumps(full, indent=2, sort_keys=True).encode() + b"\n", fingerprint


def export_half(
    folder: Path, role: str, module: nn.Module, spec: Mapping[str, Any], store: Artifacts
) -> tuple[Path, str]:
    """Write ``<role>.safetensors`` and ``<role>.json`` (sealed unless the store is plaintext).

    Returns:
        The weights' path and the parameter fingerprint.
    """
    weights, spec_bytes, fingerprint = encode_half(module, spec)
    target = store.write(folder / f"{role}.safetensors", weights, WEIGHTS_PURPOSE)
    store.write(folder / f"{role}.json", spec_bytes, SPEC_PURPOSE)
    return target, fingerprint


def spec_path_for(weights: Path) -> Path:
    """The JSON spec beside an export's weights (``x.safetensors[.sealed]`` -> ``x.json[...]``)."""
    sealed = weights.name.endswith(SUFFIX)
    stem = weights.name.removesuffix(SUFFIX).removesuffix(".safetensors")
    return weights.with_name(stem + ".json" + (SUFFIX if sealed else ""))


def decode_tensors(data: bytes, source: Path) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes; errors name the file."""
    try:
        return dict(st_load(data))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{source}: not a valid safetensors file: {exc}", code="model.corrupt"
        ) from exc


def load_half(
    weights: Path, keys: KeyProvider | None = None, *, sealed: bool | None = None
) -> ExportedHalf:
    """Load an export (unsealing it with ``keys`` when sealed) and check its fingerprint.

    Args:
        weights: The weights file (``<role>.safetensors``, or its ``.sealed`` name).
        keys: The key provider for sealed files.
        sealed: The form a job reads its exports in, from its configuration: True reads only
            sealed files and refuses a plaintext file at either name of the weights or the spec
            (even beside a sealed one); False reads only plaintext. None is for offline tools
            looking at a file the user named: the file is taken as it is.

    Raises:
        ModelError: missing, unreadable or inconsistent files (the message names the file).
        SealingError: a sealed file is tampered, for another purpose, or the key is wrong; or a
            file's form differs from ``sealed`` (``sealing.unexpected_plaintext``).
    """
    found, data = _read_part(weights, WEIGHTS_PURPOSE, keys, sealed)
    _, spec_bytes = _read_part(spec_path_for(found), SPEC_PURPOSE, keys, sealed)
    try:
        spec = json.loads(spec_bytes.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{weights}: spec is not valid JSON: {exc}", code="model.corrupt") from exc
    if not isinstance(spec, dict):
        raise ModelError(
            mismatch(f"{weights}: spec", "a JSON object", type(spec).__name__),
            code="model.corrupt",
        )
    tensors = decode_tensors(data, weights)
    seen = parameter_fingerprint(tensors)
    if spec.get("fingerprint") != seen:
        raise ModelError(
            f"{weights}: parameter fingerprint: expected {spec.get('fingerprint')}, seen {seen}",
            code="model.fingerprint",
        )
    return ExportedHalf(tensors, spec)


def _read_part(
    path: Path, purpose: str, keys: KeyProvider | None, sealed: bool | None
) -> tuple[Path, bytes]:
    """Find and read one file of an export in the form ``sealed`` asks for (None: as it is)."""
    try:
        found = path if sealed is None else locate(path, sealed=sealed)
    except SealingError as exc:
        if exc.code != "sealing.missing":
            raise
        raise ModelError(exc.message, code="model.missing") from None
    if not found.is_file():
        raise ModelError(f"{found}: no such file", code="model.missing")
    return found, read_artifact(found, purpose, keys, expect_sealed=sealed)
