"""The leakage audit: how well known attacks recover labels from the gradients the leader sent.

The leader holds the labels, so it can score, step by step, what an attacker holding exactly the
follower's view (the ``Backward`` tensors) would conclude. Nothing is sent for this: the audit
reads the tensor the leader is about to send and the labels it already has, and keeps only
per-epoch sums of AUCs.

Attacks (each gives every row of a step a score; the step's AUC says how well the score ranks
the positives above the negatives):

- ``norm``: the L2 norm of the row's gradient (Li et al., "Label Leakage and Protection in
  Two-party Split Learning"): with imbalanced classes the rarer class has larger gradients.
- ``cosine``: the cosine similarity with the gradient of one row whose label the attacker knows
  (granted here: the step's first positive row, left out of the scoring), from the same paper.
- ``sign``: no label known. The step's gradient matrix is projected on its top singular vector,
  oriented like the previous step's; with a one-linear-layer top every row's gradient is a
  multiple of one vector and the sign of the multiple is the label.

An epoch's leak AUC is the mean of its steps' AUCs ``m``, reported as ``max(m, 1 - m)``: the
attacker is given one bit per epoch, which end of the score is positive (which class has the
larger gradients can change as the model learns). The run's is the mean of the epochs', weighted
by their steps. 0.5 means the attack learns nothing, 1.0 that it recovers every label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

ATTACKS = ("norm", "cosine", "sign")


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    # Imported here: cvfl.train imports this module (through the leader's guard).
    from cvfl.train.metrics import roc_auc

    return roc_auc(labels, scores)


def norm_scores(grad: np.ndarray) -> np.ndarray:
    """The norm attack's score of each row."""
    scores: np.ndarray = np.linalg.norm(grad, axis=1)
    return scores


def cosine_scores(grad: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The cosine attack's scores and the labels of the scored rows (None: no known positive).

    The reference is the first positive row; it is not scored.
    """
    positives = np.flatnonzero(labels == 1)
    if positives.size == 0:
        return None
    ref = int(positives[0])
    rest = np.delete(np.arange(len(labels)), ref)
    norms = np.linalg.norm(grad, axis=1)
    dots = grad[rest] @ grad[ref]
    scores = dots / np.maximum(norms[rest] * norms[ref], 1e-30)
    return scores, labels[rest]


def sign_scores(grad: np.ndarray, previous: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The sign attack's scores and the oriented singular vector (the next step's reference).

    The top right singular vector of the ``(rows, width)`` gradient is the top eigenvector of
    its ``width x width`` Gram matrix: a small symmetric eigenproblem, cheap beside a full SVD.
    """
    gram = torch.from_numpy(grad.T @ grad)
    _, vectors = torch.linalg.eigh(gram)
    direction: np.ndarray = vectors[:, -1].numpy()
    if previous is not None and previous.shape == direction.shape and direction @ previous < 0:
        direction = -direction
    scores: np.ndarray = grad @ direction
    return scores, direction


def _folded(total: float, count: float) -> float | None:
    if count == 0:
        return None
    mean = total / count
    return max(mean, 1.0 - mean)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass
class LeakAudit:
    """Per-epoch sums of each attack's per-step AUC, and the sign attack's reference.

    ``epochs`` maps an epoch to ``{attack: [sum of AUCs, steps counted]}``; a step whose rows are
    all of one class (or, for ``cosine``, with one positive only) counts for no attack it cannot
    measure.
    """

    epochs: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    reference: np.ndarray | None = None

    def observe(self, epoch: int, sent: torch.Tensor, labels: np.ndarray) -> None:
        """Score one block as sent (``sent``) against its true ``labels``."""
        grad = sent.detach().double().numpy()
        labels = np.asarray(labels).astype(np.int64)
        sign, self.reference = sign_scores(grad, self.reference)
        aucs = {"norm": _roc_auc(labels, norm_scores(grad)), "sign": _roc_auc(labels, sign)}
        cosine = cosine_scores(grad, labels)
        aucs["cosine"] = _roc_auc(cosine[1], cosine[0]) if cosine is not None else math.nan
        sums = self.epochs.setdefault(epoch, {a: [0.0, 0.0] for a in ATTACKS})
        for attack, auc in aucs.items():
            if not math.isnan(auc):
                sums[attack][0] += auc
                sums[attack][1] += 1

    def summary(self) -> dict[str, Any]:
        """Leak AUC of each attack over the whole run and per epoch (None: never measurable)."""
        whole = {a: [0.0, 0.0] for a in ATTACKS}  # step-weighted sum of epoch figures, steps
        per_epoch: list[dict[str, Any]] = []
        for epoch in sorted(self.epochs):
            sums = self.epochs[epoch]
            record: dict[str, Any] = {"epoch": epoch}
            for a in ATTACKS:
                leak = _folded(sums[a][0], sums[a][1])
                record[a] = _rounded(leak)
                if leak is not None:
                    whole[a][0] += leak * sums[a][1]
                    whole[a][1] += sums[a][1]
            per_epoch.append(record)
        figures: dict[str, Any] = {
            a: _rounded(whole[a][0] / whole[a][1] if whole[a][1] else None) for a in ATTACKS
        }
        figures["steps"] = int(max(whole[a][1] for a in ATTACKS))
        figures["per_epoch"] = per_epoch
        return figures

    def state(self) -> dict[str, Any]:
        """JSON-ready state for a checkpoint."""
        return {
            "epochs": {str(e): s for e, s in self.epochs.items()},
            "reference": None if self.reference is None else self.reference.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> LeakAudit:
        """Resume from :meth:`state` (None or empty: a fresh audit)."""
        if not state:
            return cls()
        epochs = {
            int(e): {a: [float(v) for v in s[a]] for a in ATTACKS}
            for e, s in dict(state.get("epochs", {})).items()
        }
        ref = state.get("reference")
        return cls(epochs, None if ref is None else np.asarray(ref, dtype=np.float64))
