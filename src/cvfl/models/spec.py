"""The model section of a job: which split model to build, validated at the boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cvfl.configload import bounds, load_section
from cvfl.errors import ConfigError, mismatch

KINDS = ("widedeep", "mlp", "custom")
_AT_LEAST_1 = bounds(low=1)


@dataclass(frozen=True)
class ModelSpec:
    """A split model: the follower's bottom half and the leader's half (bottom + top).

    Attributes:
        kind: ``widedeep`` (Fedlearner's model), ``mlp`` (tabular) or ``custom`` (factories).
        slots: Categorical slots per party (wide&deep).
        vocab: Values per slot (wide&deep).
        embed_dim: Embedding width per slot (wide&deep).
        cut_width: Width of the follower's cut-layer output ``act1_f``.
        leader_hidden: Hidden widths of the leader's bottom (its last width joins the cut).
        leader_hidden_top: Hidden widths of the leader's top, above ``[own, act1_f]`` (empty:
            one linear layer, whose cut-layer gradients are rank 1; see docs/privacy.md).
        follower_hidden: Hidden widths of the follower's bottom before the cut (MLP).
        follower_factory: ``module:function`` building the follower half (custom).
        leader_factory: ``module:function`` building the leader half (custom).
    """

    kind: str = "widedeep"
    slots: int = field(default=512, metadata=_AT_LEAST_1)
    vocab: int = field(default=101, metadata=_AT_LEAST_1)
    embed_dim: int = field(default=16, metadata=_AT_LEAST_1)
    cut_width: int = field(default=64, metadata=_AT_LEAST_1)
    leader_hidden: tuple[int, ...] = (256, 64)
    leader_hidden_top: tuple[int, ...] = ()
    follower_hidden: tuple[int, ...] = ()
    follower_factory: str = ""
    leader_factory: str = ""
    cut_name: str = field(default="act1_f")

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"[model] kind: expected one of {', '.join(KINDS)}, seen {self.kind!r}",
                code="config.model",
            )
        for name in ("slots", "vocab", "embed_dim", "cut_width"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"[model] {name} must be positive", code="config.model")
        if any(width <= 0 for width in self.leader_hidden_top):
            raise ConfigError(
                mismatch(
                    "[model] leader_hidden_top", "positive widths", list(self.leader_hidden_top)
                ),
                code="config.model",
            )
        if self.kind == "custom" and not (self.follower_factory and self.leader_factory):
            raise ConfigError(
                "[model] kind = 'custom' needs follower_factory and leader_factory "
                "('package.module:function')",
                code="config.model",
            )

    @classmethod
    def from_toml_table(cls, table: Mapping[str, Any]) -> ModelSpec:
        """Build from the job's ``[model]`` table, every key checked (:mod:`cvfl.configload`)."""
        return load_section(cls, "model", table, None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (for export specs)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
