"""Held-out metrics computed by the leader: AUC, log-loss, accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metrics:
    """Binary classification quality on a set of rows."""

    auc: float
    log_loss: float
    accuracy: float
    rows: int

    def as_dict(self) -> dict[str, float]:
        """A JSON-ready mapping."""
        return {"auc": self.auc, "log_loss": self.log_loss, "accuracy": self.accuracy}


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


def binary_metrics(labels: np.ndarray, logits: np.ndarray) -> Metrics:
    """Metrics from two-class logits ``(n, 2)``; the score is ``p(class 1)``."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    labels = np.asarray(labels, dtype=np.int64)
    log_loss = float(-log_probs[np.arange(labels.size), labels].mean()) if labels.size else 0.0
    predictions = logits.argmax(axis=1)
    accuracy = float((predictions == labels).mean()) if labels.size else 0.0
    auc = roc_auc(labels, log_probs[:, 1] - log_probs[:, 0])
    return Metrics(auc=auc, log_loss=log_loss, accuracy=accuracy, rows=int(labels.size))
