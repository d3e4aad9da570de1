"""Held-out metrics computed by the leader, per task (scikit-learn does the arithmetic).

- binary: ROC AUC (primary), log-loss, accuracy;
- multiclass: one-vs-rest macro ROC AUC (primary), accuracy, macro F1, log-loss;
- regression: RMSE (primary, lower is better), MAE, R².

:func:`roc_auc` stays for the leakage audit, which scores many small gradient sets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "log_loss", "accuracy"),
    "multiclass": ("macro_auc", "accuracy", "macro_f1", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
PRIMARY = {task: names[0] for task, names in METRICS.items()}
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
LABELS = {
    "auc": "AUC",
    "macro_auc": "macro AUC",
    "log_loss": "log-loss",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}


@dataclass(frozen=True)
class Metrics:
    """A task's named held-out metrics on a set of rows.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        values: Each of the task's metrics (see :data:`METRICS`) by name.
        rows: How many rows were scored (0 when read back from a summary).
    """

    task: str
    values: Mapping[str, float] = field(default_factory=dict)
    rows: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        """The task's metric names, primary first."""
        return METRICS.get(self.task, tuple(self.values))

    @property
    def primary_name(self) -> str:
        """The name of the metric early stopping and summaries lead with."""
        return PRIMARY.get(self.task, next(iter(self.values), ""))

    @property
    def primary(self) -> float:
        """The primary metric's value."""
        return self.get(self.primary_name)

    def get(self, name: str) -> float:
        """One metric's value (NaN when the task has no such metric)."""
        return float(self.values.get(name, math.nan))

    @property
    def loss(self) -> float:
        """The held-out loss curves show: log-loss of a classifier, MSE of a regressor."""
        return self.get("rmse") ** 2 if self.task == "regression" else self.get("log_loss")

    @property
    def auc(self) -> float:
        """ROC AUC (binary) or macro one-vs-rest AUC (multiclass); NaN for regression."""
        return self.get("auc" if self.task == "binary" else "macro_auc")

    @property
    def log_loss(self) -> float:
        """Held-out log-loss (NaN for regression)."""
        return self.get("log_loss")

    @property
    def accuracy(self) -> float:
        """Held-out accuracy (NaN for regression)."""
        return self.get("accuracy")

    def as_dict(self) -> dict[str, float]:
        """A JSON-ready mapping of every metric, in the task's order."""
        return {name: self.get(name) for name in self.names}

    def summary(self) -> str:
        """``auc 0.9123  log_loss 0.3012  accuracy 0.8800``: every metric, primary first."""
        return "  ".join(f"{name} {self.get(name):.4f}" for name in self.names)

    @classmethod
    def from_json(cls, task: str, values: Mapping[str, object]) -> Metrics:
        """Read metrics back from a result summary (unknown names are ignored)."""
        names = METRICS.get(task, ())
        return cls(task, {n: float(str(values[n])) for n in names if n in values})


def better(name: str, candidate: float, best: float) -> bool:
    """Whether ``candidate`` improves on ``best`` for metric ``name`` (NaN never improves)."""
    if math.isnan(candidate):
        return False
    if math.isnan(best):
        return True
    return candidate < best if name in LOWER_IS_BETTER else candidate > best


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum statistic (ties get average ranks).

    Returns NaN when only one class is present.
    """
    labels = np.asarray(labels).astype(bool)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(labels.size, dtype=np.float64)
    # Average ranks over runs of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], labels.size]
    # One vectorised pass: each sorted position takes its run's average rank.
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def task_metrics(task: str, labels: np.ndarray, outputs: np.ndarray) -> Metrics:
    """The task's metrics of the leader's ``outputs`` (logits, or one regression column)."""
    if task == "regression":
        return regression_metrics(labels, outputs)
    if task == "multiclass":
        return multiclass_metrics(labels, outputs)
    return binary_metrics(labels, outputs)


def _log_probs(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return out


def _sk() -> Any:
    """scikit-learn's metrics module (imported on first use: it takes a while to load)."""
    import sklearn.metrics  # type: ignore[import-untyped]

    return sklearn.metrics


def preload_backend() -> None:
    """Import the metrics backend now (about a second), before a training clock starts.

    Otherwise the first held-out evaluation pays the import inside the timed loop, and a
    fresh process's examples per second come out lower than a warm one's for the same work.
    """
    _sk()


def _sk_auc(labels: np.ndarray, scores: np.ndarray) -> float:

    if np.unique(labels).size < 2:
        return math.nan
    return float(_sk().roc_auc_score(labels, scores))


def _classes(labels: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Integer labels, log-probabilities and the mean log-loss (computed from the logits)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    log_probs = _log_probs(logits) if labels.size else logits
    loss = float(-log_probs[np.arange(labels.size), labels].mean()) if labels.size else math.nan
    return labels, log_probs, loss


def binary_metrics(labels: np.ndarray, logits: np.ndarray) -> Metrics:
    """Metrics from two-class logits ``(n, 2)``; the score is ``p(class 1)``."""
    labels, log_probs, loss = _classes(labels, logits)
    if not labels.size:
        return Metrics("binary", dict.fromkeys(METRICS["binary"], math.nan), 0)
    accuracy = float(_sk().accuracy_score(labels, log_probs.argmax(axis=1)))
    auc = _sk_auc(labels, log_probs[:, 1] - log_probs[:, 0])
    values = {"auc": auc, "log_loss": loss, "accuracy": accuracy}
    return Metrics("binary", values, int(labels.size))


def multiclass_metrics(labels: np.ndarray, logits: np.ndarray) -> Metrics:
    """Metrics from ``(n, K)`` logits: accuracy, macro F1, log-loss, one-vs-rest macro AUC.

    The macro AUC averages the classes that have both positives and negatives among the rows
    (NaN when none has).
    """
    labels, log_probs, loss = _classes(labels, logits)
    if not labels.size:
        return Metrics("multiclass", dict.fromkeys(METRICS["multiclass"], math.nan), 0)
    predicted = log_probs.argmax(axis=1)
    probs = np.exp(log_probs)
    aucs = [_sk_auc(labels == k, probs[:, k]) for k in range(log_probs.shape[1])]
    finite = [a for a in aucs if not math.isnan(a)]
    values = {
        "macro_auc": float(np.mean(finite)) if finite else math.nan,
        "accuracy": float(_sk().accuracy_score(labels, predicted)),
        "macro_f1": float(_sk().f1_score(labels, predicted, average="macro", zero_division=0)),
        "log_loss": loss,
    }
    return Metrics("multiclass", values, int(labels.size))


def regression_metrics(targets: np.ndarray, outputs: np.ndarray) -> Metrics:
    """RMSE, MAE and R² of the single output column against the targets."""
    truth = np.asarray(targets, dtype=np.float64)
    predicted = np.asarray(outputs, dtype=np.float64).reshape(len(truth), -1)[:, 0]
    if not truth.size:
        return Metrics("regression", dict.fromkeys(METRICS["regression"], math.nan), 0)
    values = {
        "rmse": math.sqrt(float(_sk().mean_squared_error(truth, predicted))),
        "mae": float(_sk().mean_absolute_error(truth, predicted)),
        "r2": float(_sk().r2_score(truth, predicted)) if truth.size > 1 else math.nan,
    }
    return Metrics("regression", values, int(truth.size))
