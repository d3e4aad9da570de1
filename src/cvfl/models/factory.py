"""Build each party's half from a :class:`ModelSpec`, deterministically from a seed."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from cvfl.errors import ConfigError, ModelError, mismatch
from cvfl.models.generators import drawing_from
from cvfl.models.nets import FollowerHalf, LeaderHalf, MixedEncoder, SlotEmbedding
from cvfl.models.spec import ModelSpec

if TYPE_CHECKING:
    from cvfl.data.prep import InputLayout

Factory = Callable[[ModelSpec, int], nn.Module]


def role_seed(seed: int, role: str) -> int:
    """A 63-bit seed for one role's parameter initialisation, derived from the job seed."""
    digest = hashlib.sha256(f"cvfl/init/{role}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@contextmanager
def seeded(seed: int, role: str) -> Iterator[None]:
    """Borrow PyTorch's global CPU generator, seeded for one role's build, for the block.

    Builders and custom factories draw from the global generator (PyTorch's initialisers do);
    the caller's random state is the same after the block as before it.
    """
    with drawing_from(torch.Generator().manual_seed(role_seed(seed, role))):
        yield


def load_factory(path: str) -> Factory:
    """Import ``package.module:function``; errors name the path."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"model factory {path!r}: expected 'package.module:function'", code="config.model"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"model factory {path!r}: cannot import {module_name}: {exc}", code="config.model"
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"model factory {path!r}: {attr} is not callable", code="config.model")
    return cast(Factory, fn)


def _encoder(
    spec: ModelSpec, num_features: int, layout: InputLayout | None
) -> tuple[nn.Module, int]:
    if layout is not None and layout.cardinalities:
        if spec.kind != "mlp" or layout.width != num_features:
            raise ModelError(
                mismatch(
                    "categorical columns", "an mlp model over the layout's columns", spec.kind
                ),
                code="model.shape",
            )
        dim = layout.embed_dim
        encoder = MixedEncoder(layout.numeric_width, layout.cardinalities, dim)
        return encoder, layout.numeric_width + dim * len(layout.cardinalities)
    if spec.kind == "widedeep":
        if num_features != spec.slots:
            raise ModelError(
                f"wide&deep expects one column per slot: expected {spec.slots} feature "
                f"columns, seen {num_features}",
                code="model.shape",
            )
        return SlotEmbedding(spec.slots, spec.vocab, spec.embed_dim), spec.slots * spec.embed_dim
    return nn.Identity(), num_features


def build_follower(
    spec: ModelSpec, num_features: int, seed: int, layout: InputLayout | None = None
) -> nn.Module:
    """The follower's half, initialised from ``seed`` (``layout``: from the preprocessing).

    The caller's global random state is left as it was (see :func:`seeded`).
    """
    with seeded(seed, "follower"):
        return _follower(spec, num_features, layout)


def _follower(spec: ModelSpec, num_features: int, layout: InputLayout | None) -> nn.Module:
    if spec.kind == "custom":
        return load_factory(spec.follower_factory)(spec, num_features)
    encoder, width = _encoder(spec, num_features, layout)
    return FollowerHalf(encoder, width, list(spec.follower_hidden), spec.cut_width)


def build_leader(
    spec: ModelSpec, num_features: int, seed: int, layout: InputLayout | None = None
) -> nn.Module:
    """The leader's half, initialised from ``seed`` (``layout``: from the preprocessing).

    The caller's global random state is left as it was (see :func:`seeded`).
    """
    with seeded(seed, "leader"):
        return _leader(spec, num_features, layout)


def _leader(spec: ModelSpec, num_features: int, layout: InputLayout | None) -> nn.Module:
    if spec.kind == "custom":
        return load_factory(spec.leader_factory)(spec, num_features)
    if not spec.leader_hidden:
        raise ConfigError("[model] leader_hidden must name at least one width", code="config.model")
    encoder, width = _encoder(spec, num_features, layout)
    hidden = list(spec.leader_hidden)
    top = spec.leader_hidden_top
    return LeaderHalf(encoder, width, hidden, spec.cut_width, top, spec.output_width)
