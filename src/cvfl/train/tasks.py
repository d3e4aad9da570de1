"""The learning task of a job: its loss, its resolved class count and its checks.

``[model] task`` says what the leader's labels are (see :class:`~cvfl.models.spec.ModelSpec`).
Only the leader has labels, so only the leader's half (its output width and its loss) depends on
the task; the follower's half is the same for every task.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from cvfl.errors import DataError, mismatch
from cvfl.models.spec import ModelSpec

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
