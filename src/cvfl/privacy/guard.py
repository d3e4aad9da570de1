"""The leader's label guard: the one object its training loop calls for ``[privacy]``.

It holds the true labels (they never leave it), gives the loop the labels to train with
(randomized response when asked), turns each block's raw cut-layer gradient into the one that is
sent (the defence, under the job's seed) and feeds that tensor to the leakage audit.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from cvfl.logs import get_logger
from cvfl.privacy.accountant import gaussian_epsilon
from cvfl.privacy.audit import LeakAudit
from cvfl.privacy.config import PrivacySection
from cvfl.privacy.defences import protect, randomized_response, step_generator

log = get_logger(__name__)


class LabelGuard:
    """Defence and audit of one leader worker.

    Args:
        section: The job's ``[privacy]``.
        seed: The job's seed (every random draw derives from it).
        worker: This worker's index (its noise differs from the other workers').
        labels: The true labels of the aligned table.
        train_rows: The rows training uses (randomized response touches only these).
        state: What :meth:`state` returned at the checkpoint being resumed, if any.
        audited: Whether this worker audits (with several workers, worker 0 audits its blocks).
    """

    def __init__(
        self,
        section: PrivacySection,
        seed: int,
        worker: int,
        labels: np.ndarray,
        train_rows: np.ndarray,
        state: dict[str, Any] | None = None,
        audited: bool = True,
    ) -> None:
        self.section = section
        self.seed = seed
        self.worker = worker
        self.true_labels = labels
        self.labels = labels
        if section.label_epsilon > 0 and labels.size:
            noisy = randomized_response(labels, section.label_epsilon, seed)
            self.labels = labels.copy()
            self.labels[train_rows] = noisy[train_rows]
            log.info("training on randomized-response labels (ε %s)", section.label_epsilon)
        self.audit = LeakAudit.from_state(state) if section.audit and audited else None

    def training_labels(self) -> torch.Tensor:
        """The labels the loss uses (the true ones, or their randomized response)."""
        return torch.from_numpy(self.labels)

    def protect(self, step: int, epoch: int, rows: np.ndarray, grad: torch.Tensor) -> torch.Tensor:
        """The gradient to send for ``rows`` in ``step``, recorded by the audit."""
        sent = grad
        if self.section.defence != "none":
            gen = step_generator(self.seed, step, self.worker)
            sent = protect(grad, self.labels[rows], self.section, gen).contiguous()
        if self.audit is not None:
            self.audit.observe(epoch, sent, self.true_labels[rows])
        return sent

    def state(self) -> dict[str, Any]:
        """JSON-ready state for the leader's checkpoint."""
        return self.audit.state() if self.audit is not None else {}

    def summary(self, releases: int) -> dict[str, Any]:
        """The ``privacy`` record of the leader's result: settings, leak AUCs and ε.

        Args:
            releases: How many epochs each training row's gradient was sent in.
        """
        section = self.section
        epsilon: dict[str, Any] = {"delta": section.delta}
        if section.defence == "gaussian":
            value = gaussian_epsilon(section.noise_multiplier, releases, section.delta)
            epsilon["gaussian"] = round(value, 4) if math.isfinite(value) else None
        if section.label_epsilon > 0:
            epsilon["label"] = section.label_epsilon
        return {
            "settings": asdict(section),
            "audit": self.audit.summary() if self.audit is not None else None,
            "epsilon": epsilon,
        }
