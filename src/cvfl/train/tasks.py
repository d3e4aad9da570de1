"""The learning task of a job: its loss, its resolved class count and its checks.

``[model] task`` says what the leader's labels are (see :class:`~cvfl.models.spec.ModelSpec`).
Only the leader has labels, so only the leader's half (its output width and its loss) depends on
the task; the follower's half is the same for every task.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cvfl.errors import DataError, mismatch
from cvfl.models.spec import ModelSpec
from cvfl.train.metrics import Metrics, task_metrics

HUBER_DELTA = 1.0


def task_loss(
    spec: ModelSpec, outputs: torch.Tensor, targets: torch.Tensor, reduction: str
) -> torch.Tensor:
    """The task's loss of ``outputs`` against ``targets`` (``reduction``: ``mean`` or ``sum``).

    Classification: cross-entropy over the logits (int64 class targets). Regression: mean
    squared error or Huber loss of the single output column (float32 targets).
    """
    if spec.classification:
        return F.cross_entropy(outputs, targets, reduction=reduction)
    predicted = outputs[:, 0]
    if spec.regression_loss == "huber":
        return F.huber_loss(predicted, targets, reduction=reduction, delta=HUBER_DELTA)
    return F.mse_loss(predicted, targets, reduction=reduction)


def label_dtype(spec: ModelSpec) -> type[np.generic]:
    """The dtype of the label array: int64 class indices, or float32 regression targets."""
    return np.int64 if spec.classification else np.float32


def resolve_classes(spec: ModelSpec, labels: np.ndarray | None) -> ModelSpec:
    """``spec`` with ``num_classes`` resolved from the leader's labels (multiclass with 0).

    Binary resolves to 2, regression stays 0, a multiclass count given in the job is kept
    (the table reader has already refused labels beyond it).

    Raises:
        DataError: a multiclass task whose labels hold fewer than two classes
            (``data.label``).
    """
    if spec.task == "binary":
        return replace(spec, num_classes=2)
    if spec.task == "regression" or spec.num_classes or labels is None:
        return spec
    inferred = int(labels.max()) + 1 if labels.size else 0
    if inferred < 2:
        raise DataError(
            mismatch(
                "[model] num_classes inferred from the labels",
                "at least 2 classes (largest label at least 1)",
                inferred,
            ),
            code="data.label",
        )
    return replace(spec, num_classes=inferred)


@dataclass(frozen=True)
class TargetScale:
    """A regression target's training-row mean and deviation: trained on ``(y - center) / scale``.

    The leader's half then predicts in those units; :meth:`unscale` turns its outputs (and the
    scaled labels) back into the target's own units for metrics and predictions.
    """

    center: float
    scale: float

    @classmethod
    def fit(cls, targets: np.ndarray) -> TargetScale:
        """Mean and standard deviation of ``targets`` (a deviation below 1e-12 counts as 1)."""
        values = np.asarray(targets, dtype=np.float64)
        center = float(values.mean()) if values.size else 0.0
        deviation = float(values.std()) if values.size else 1.0
        return cls(center, deviation if deviation >= 1e-12 else 1.0)

    def apply(self, targets: np.ndarray) -> np.ndarray:
        """``targets`` in training units (float32)."""
        scaled: np.ndarray = ((np.asarray(targets, np.float64) - self.center) / self.scale).astype(
            np.float32
        )
        return scaled

    def unscale(self, values: np.ndarray) -> np.ndarray:
        """Outputs or scaled labels back in the target's own units (float64)."""
        return np.asarray(values, dtype=np.float64) * self.scale + self.center

    def to_json(self) -> dict[str, float]:
        """For the export spec."""
        return {"center": self.center, "scale": self.scale}

    @classmethod
    def from_json(cls, value: Any) -> TargetScale:
        """Read an export spec's ``target``; raises ValueError unless two finite numbers."""
        if not isinstance(value, dict) or set(value) != {"center", "scale"}:
            raise ValueError(f"target: expected {{center, scale}}, seen {value!r:.80}")
        center, scale = value["center"], value["scale"]
        numbers = (center, scale)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            raise ValueError("target: center and scale must be numbers")
        if not (np.isfinite(center) and np.isfinite(scale) and scale > 0):
            raise ValueError("target: center must be finite and scale finite and positive")
        return cls(float(center), float(scale))


def fit_target(
    spec: ModelSpec, labels: np.ndarray | None, train_rows: np.ndarray
) -> TargetScale | None:
    """The target scaling of a regression leader (fitted on ``train_rows``), else None.

    ``train_rows``: the training rows' indices, or a boolean mask of them.
    """
    if spec.task != "regression" or spec.target_scaling != "standard" or labels is None:
        return None
    return TargetScale.fit(labels[train_rows])


def held_out_metrics(
    spec: ModelSpec, target: TargetScale | None, labels: np.ndarray, outputs: np.ndarray
) -> Metrics:
    """The task's metrics of held-out ``outputs``, in the target's own units."""
    if target is not None:
        labels, outputs = target.unscale(labels), target.unscale(outputs)
    return task_metrics(spec.task, labels, outputs)


def validation_loss(metrics: Metrics, target: TargetScale | None) -> float:
    """The held-out loss in the units training minimises (scaled, for a scaled target)."""
    return metrics.loss / target.scale**2 if target is not None else metrics.loss
