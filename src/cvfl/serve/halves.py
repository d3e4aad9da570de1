"""Load a party's exported half for scoring and refuse one from another job, role or version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cvfl import __version__
from cvfl.bridge.serde import TensorSpec
from cvfl.data.prep import Preprocessing
from cvfl.errors import ConfigError, ModelError, mismatch
from cvfl.models.export import FORMAT, load_half
from cvfl.models.factory import build_follower, build_leader
from cvfl.models.spec import ModelSpec
from cvfl.sealing.artifacts import SUFFIX, twin_names
from cvfl.sealing.keys import KeyProvider
from cvfl.train.config import JobConfig, outputs_sealed
from cvfl.train.tasks import TargetScale


@dataclass(frozen=True)
class ScoringHalf:
    """An exported half, rebuilt as a module in eval mode, with what its spec declares."""

    module: nn.Module
    model: ModelSpec
    cut_layer: tuple[TensorSpec, ...]
    feature_names: tuple[str, ...]
    fingerprint: str
    steps: int
    export_format: str
    software_version: str
    path: Path
    prep: Preprocessing | None = None
    target: TargetScale | None = None


def default_export(cfg: JobConfig) -> Path:
    """``<workdir>/export/<role>.safetensors``, ``.sealed`` when the job seals its outputs.

    The name comes from the job's configuration (``[sealing]``), not from the files present.
    """
    base = cfg.job.workdir / "export" / f"{cfg.role}.safetensors"
    return base.with_name(base.name + SUFFIX) if outputs_sealed(cfg) else base


def parse_tensor_spec(text: str) -> TensorSpec:
    """Invert :meth:`TensorSpec.describe` (``"act1_f float32 [64]"``)."""
    parts = text.split(" ", 2)
    try:
        shape = json.loads(parts[2]) if len(parts) == 3 else None
    except json.JSONDecodeError:
        shape = None
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ModelError(
            mismatch("cut_layer entry", "'<name> <dtype> [<dims>]'", repr(text)),
            code="model.spec",
        )
    return TensorSpec(parts[0], parts[1], tuple(shape))


SPLIT = "split"  # the variant of a split half's export (its spec names none)


def check_spec(spec: dict[str, Any], cfg: JobConfig, path: Path, variant: str = SPLIT) -> None:
    """Refuse an export made for another job, role, format, cvfl version or variant.

    ``variant`` is ``split`` for a split half and ``leader-only`` for the fallback model
    (:mod:`cvfl.train.fallback`): neither is loaded in the other's place.
    """
    expected = {
        "job_id": cfg.job.id,
        "role": cfg.role,
        "format": FORMAT,
        "cvfl_version": __version__,
        "variant": variant,
    }
    seen = {**spec, "variant": spec.get("variant", SPLIT)}
    problems = [
        mismatch(key, value, seen.get(key))
        for key, value in expected.items()
        if seen.get(key) != value
    ]
    if problems:
        raise ModelError(
            f"{path}: the export does not belong to this job: " + "; ".join(problems),
            code="model.foreign",
        )


def load_scoring_half(
    path: Path, cfg: JobConfig, keys: KeyProvider | None, variant: str = SPLIT
) -> ScoringHalf:
    """Load, check and rebuild this party's half, read only in the job's form (sealed or not).

    ``variant`` is what the export must declare (see :func:`check_spec`).

    Raises:
        ModelError: missing, inconsistent or foreign export (names the field, expected, seen).
        SealingError: a sealed export is tampered, for another purpose, or the key is wrong; or
            a plaintext file where the job keeps its export sealed
            (``sealing.unexpected_plaintext``, naming the file).
        ConfigError: no ``[sealing]`` and no ``[job] plaintext_outputs = true``.
    """
    sealed = outputs_sealed(cfg)
    if not any(p.is_file() for p in (twin_names(path) if sealed else (path,))):
        raise ModelError(
            f"{path}: no such file (train the job first, or set [predict] export)",
            code="model.missing",
        )
    half = load_half(path, keys, sealed=sealed)
    spec = half.spec
    check_spec(spec, cfg, path, variant)
    try:
        model = ModelSpec.from_toml_table(spec["model"])
        names = tuple(str(n) for n in spec["feature_names"])
        cut = tuple(parse_tensor_spec(str(s)) for s in spec["cut_layer"])
        steps = int(spec["steps"])
        prep = Preprocessing.from_json(spec["preprocessing"]) if "preprocessing" in spec else None
        target = TargetScale.from_json(spec["target"]) if "target" in spec else None
    except (KeyError, TypeError, ValueError, ConfigError, ModelError) as exc:
        raise ModelError(f"{path}: incomplete export spec: {exc}", code="model.spec") from exc
    if prep is not None and prep.output_names != names:
        raise ModelError(
            mismatch(f"{path}: preprocessing columns", list(names), list(prep.output_names)),
            code="model.spec",
        )
    build = build_leader if cfg.role == "leader" else build_follower
    layout = prep.layout if prep is not None else None
    module = build(model, len(names), cfg.job.seed, layout)
    try:
        module.load_state_dict(half.tensors, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: the weights do not fit the declared model: {exc}", code="model.shape"
        ) from exc
    module.eval()
    return ScoringHalf(
        module,
        model,
        cut,
        names,
        spec["fingerprint"],
        steps,
        spec["format"],
        spec["cvfl_version"],
        path,
        prep,
        target,
    )
