"""Training in one process: the centralized twin of a split job, and the leader-only baseline.

These are what split training is measured against: the exactness test compares parameters with
:func:`train_centralized`, and the demo prints the AUC of :func:`train_leader_only` beside the
split model's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from cvfl.models.nets import CombinedModel, LeaderOnly
from cvfl.train.early import decide
from cvfl.train.metrics import Metrics, preload_backend
from cvfl.train.party import Party, Progress, make_optimizer
from cvfl.train.result import RunClock, TrainResult
from cvfl.train.rng import drawing_from
from cvfl.train.tasks import held_out_metrics, label_dtype, task_loss, validation_loss

Forward = Callable[[np.ndarray, bool], torch.Tensor]  # rows, whether a training step's


def train_centralized(
    leader: Party, follower: Party, progress: Progress | None = None
) -> tuple[CombinedModel, TrainResult]:
    """Train both halves as one model with one optimiser, on the leader's schedule."""
    model = CombinedModel(follower.model, leader.model)
    optimizer = make_optimizer(leader.cfg.train, model.parameters())

    def forward(rows: np.ndarray, step: bool) -> torch.Tensor:
        out: torch.Tensor = model(leader.inputs(rows, step=step), follower.inputs(rows, step=step))
        return out

    follower.begin(0)

    result = _fit(model, forward, optimizer, leader, progress)
    return model, result


def train_leader_only(leader: Party, progress: Progress | None = None) -> TrainResult:
    """Train the leader's half with zeros in place of the follower's activations."""
    model = LeaderOnly(leader.model, leader.cfg.model.cut_width)

    def forward(rows: np.ndarray, step: bool) -> torch.Tensor:
        out: torch.Tensor = model(leader.inputs(rows, step=step))
        return out

    return _fit(model, forward, leader.optimizer, leader, progress)


def evaluate(model: nn.Module, forward: Forward, leader: Party, labels: np.ndarray) -> Metrics:
    """Held-out metrics of a local model (in the target's own units)."""
    schedule = leader.schedule
    model.eval()
    with torch.no_grad():
        logits = torch.cat([forward(rows, False).cpu() for rows in schedule.eval_batches()])
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
    preload_backend()  # the held-out metrics' import is not training time
    timer = RunClock()
    losses: list[float] = []
    best = _Best(leader)
    rng = leader.fresh_rng()  # the twin draws what the split leader would, not the caller's
    leader.begin(0)
    for step in schedule.steps():
        with drawing_from(rng):
            targets = labels[step.rows].to(leader.device)
            loss = task_loss(spec, forward(step.rows, True), targets, "mean")
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
                {"epoch": step.epoch, "step": step.number, "train_loss": float(np.mean(losses))}
                | {"val_loss": validation_loss(result.metrics, leader.target)}
                | {f"val_{k}": v for k, v in result.metrics.as_dict().items()}
            )
            losses = []
            if best.stop_after(model, result, step.number == schedule.total_steps):
                break
    best.restore(model, result)
    timer.stop(result)
    return result


class _Best:
    """``[train]`` early stopping for a local twin: the split job's rule, on its own history.

    The twin keeps the state of its best held-out epoch and ends with it, so a centralized or
    leader-only model compares with an early-stopped split model epoch for epoch.
    """

    def __init__(self, leader: Party) -> None:
        self.train = leader.cfg.train
        self.state: dict[str, torch.Tensor] | None = None
        self.metrics: Metrics | None = None
        self.step = 0

    def stop_after(self, model: nn.Module, result: TrainResult, last: bool) -> bool:
        """Record the epoch just evaluated; whether training stops here."""
        if not self.train.early_stopping:
            return False
        metric, patience = self.train.early_stopping_metric, self.train.early_stopping_patience
        decision = decide(metric, patience, result.history, last)
        if decision.best_step == decision.step:
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.metrics, self.step = result.metrics, decision.step
        result.stopped_early = decision.stop and not last
        return decision.stop

    def restore(self, model: nn.Module, result: TrainResult) -> None:
        """End with the best epoch's state and metrics (nothing to do without early stopping)."""
        if self.state is None:
            return
        model.load_state_dict(self.state)
        result.metrics, result.best_step = self.metrics, self.step
