"""Training in one process: the centralized twin of a split job, and the leader-only baseline.

These are what split training is measured against: the exactness test compares parameters with
:func:`train_centralized`, and the demo prints the AUC of :func:`train_leader_only` beside the
split model's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from cvfl.models.nets import CombinedModel, LeaderOnly
from cvfl.train.metrics import Metrics
from cvfl.train.party import Party, Progress, features, make_optimizer
from cvfl.train.result import TrainResult
from cvfl.train.tasks import held_out_metrics, label_dtype, task_loss, validation_loss

Forward = Callable[[np.ndarray], torch.Tensor]


def train_centralized(
    leader: Party, follower: Party, progress: Progress | None = None
) -> tuple[CombinedModel, TrainResult]:
    """Train both halves as one model with one optimiser, on the leader's schedule."""
    model = CombinedModel(follower.model, leader.model)
    optimizer = make_optimizer(leader.cfg.train, model.parameters())

    def forward(rows: np.ndarray) -> torch.Tensor:
        out: torch.Tensor = model(features(leader.table, rows), features(follower.table, rows))
        return out

    result = _fit(model, forward, optimizer, leader, progress)
    return model, result


def train_leader_only(leader: Party, progress: Progress | None = None) -> TrainResult:
    """Train the leader's half with zeros in place of the follower's activations."""
    model = LeaderOnly(leader.model, leader.cfg.model.cut_width)

    def forward(rows: np.ndarray) -> torch.Tensor:
        out: torch.Tensor = model(features(leader.table, rows))
        return out

    return _fit(model, forward, leader.optimizer, leader, progress)


def evaluate(model: nn.Module, forward: Forward, leader: Party, labels: np.ndarray) -> Metrics:
    """Held-out metrics of a local model (in the target's own units)."""
    schedule = leader.schedule
    model.eval()
    with torch.no_grad():
        logits = torch.cat([forward(rows) for rows in schedule.eval_batches()])
    model.train()
    holdout = labels[schedule.holdout_rows]
    return held_out_metrics(leader.cfg.model, leader.target, holdout, logits.numpy())


def _fit(
    model: nn.Module,
    forward: Forward,
    optimizer: torch.optim.Optimizer,
    leader: Party,
    progress: Progress | None,
) -> TrainResult:
    assert leader.table.labels is not None
    spec = leader.cfg.model
    truth = leader.table.labels.astype(label_dtype(spec))
    labels = torch.from_numpy(truth)
    schedule = leader.schedule
    result = TrainResult(role="local", steps=0, seconds=0.0)
    if progress:
        progress.start(schedule.total_steps, "local")
    started = time.perf_counter()
    losses: list[float] = []
    for step in schedule.steps():
        loss = task_loss(spec, forward(step.rows), labels[step.rows], "mean")
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
        result.steps, result.examples = step.number, result.examples + len(step.rows)
        result.session_examples += len(step.rows)
        if progress:
            progress.step(step.number, losses[-1])
        if step.ends_epoch:
            result.metrics = evaluate(model, forward, leader, truth)
            result.history.append(
                {"epoch": step.epoch, "train_loss": float(np.mean(losses))}
                | {"val_loss": validation_loss(result.metrics, leader.target)}
                | {f"val_{k}": v for k, v in result.metrics.as_dict().items()}
            )
            losses = []
    result.seconds = time.perf_counter() - started
    return result
