"""The model section of a job: which split model to build, validated at the boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from cvfl.configload import bounds, load_section
from cvfl.errors import ConfigError, mismatch

KINDS = ("widedeep", "mlp", "custom")
TASKS = ("binary", "multiclass", "regression")
Task = Literal["binary", "multiclass", "regression"]
TASK_KEYS = ("task", "num_classes", "regression_loss", "target_scaling")
MAX_CLASSES = 100_000
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
        task: What the leader's labels are: ``binary`` (0/1, two logits), ``multiclass``
            (``0..num_classes-1``, one logit per class) or ``regression`` (finite numbers, one
            output).
        num_classes: Classes of a multiclass task (0: inferred from the leader's training
            labels as the largest label + 1; a binary task has 2).
        regression_loss: The loss of a regression task: ``mse`` or ``huber`` (delta 1).
        target_scaling: Regression only: ``standard`` trains on the target centred and scaled
            by its training-row mean and deviation (the loss is in those units; predictions and
            metrics are in the target's own), ``none`` on the raw target.
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
    task: Task = "binary"
    num_classes: int = field(default=0, metadata=bounds(low=0, high=MAX_CLASSES))
    regression_loss: Literal["mse", "huber"] = "mse"
    target_scaling: Literal["standard", "none"] = "standard"

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
        self._check_task()
        if self.kind == "custom" and not (self.follower_factory and self.leader_factory):
            raise ConfigError(
                "[model] kind = 'custom' needs follower_factory and leader_factory "
                "('package.module:function')",
                code="config.model",
            )

    def _check_task(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(
                mismatch("[model] task", " or ".join(TASKS), repr(self.task)), code="config.model"
            )
        if self.task == "binary" and self.num_classes not in (0, 2):
            raise ConfigError(
                mismatch("[model] num_classes", "0 or 2 for task = 'binary'", self.num_classes),
                code="config.model",
            )
        if self.task == "multiclass" and self.num_classes == 1:
            raise ConfigError(
                mismatch(
                    "[model] num_classes",
                    "at least 2 for task = 'multiclass' (0: inferred from the labels)",
                    self.num_classes,
                ),
                code="config.model",
            )
        if self.task == "regression" and self.num_classes:
            raise ConfigError(
                mismatch(
                    "[model] num_classes", "0 (unused) for task = 'regression'", self.num_classes
                ),
                code="config.model",
            )

    @property
    def output_width(self) -> int:
        """Width of the leader's output: 2 logits (binary), K (multiclass), 1 (regression).

        A multiclass task must have its ``num_classes`` resolved (see :func:`with_classes`).
        """
        if self.task == "binary":
            return 2
        if self.task == "regression":
            return 1
        if self.num_classes < 2:
            raise ConfigError(
                mismatch("[model] num_classes", "resolved (at least 2)", self.num_classes),
                code="config.model",
            )
        return self.num_classes

    @property
    def classification(self) -> bool:
        """Whether the task predicts a class (binary or multiclass)."""
        return self.task != "regression"

    @classmethod
    def from_toml_table(cls, table: Mapping[str, Any]) -> ModelSpec:
        """Build from the job's ``[model]`` table, every key checked (:mod:`cvfl.configload`)."""
        return load_section(cls, "model", table, None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (for export specs)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
