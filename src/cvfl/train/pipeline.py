"""Pipelined split training with bounded staleness (``[train] staleness = k``).

With ``k = 0`` (the default) every step is exact: the follower sends a step's activations only
after applying the previous step's gradient. With ``k > 0`` the follower runs up to ``k`` forward
passes ahead of the gradients it has received, and applies each gradient when it arrives, ``k``
steps late, to its current weights. The gradient of a step is computed at the weights that step's
forward pass used (they are kept until its gradient arrives: weight stashing), so what is late is
only the update, never the graph.

The leader drives the window: the follower forwards only the steps the leader has assigned. The
leader assigns step ``n`` once it has sent the gradient of step ``n - 1 - k``, and never past a
*boundary* (an epoch end, a multiple of ``checkpoint_every`` or of :data:`DRAIN_EVERY`) before
that boundary's gradient has gone out. Checkpoints are taken only at boundaries (one due by
``checkpoint_every_s`` waits for the next), so every checkpoint, held-out evaluation and
early-stopping decision sees a drained pipeline: no gradient outstanding, no forward pass ahead.
The boundaries depend only on step numbers, so a run is deterministic for a given ``k`` and
resumes exactly from any checkpoint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call

from cvfl.bridge.reliable import AnySession
from cvfl.errors import ProtocolError, mismatch
from cvfl.train.cadence import CheckpointClock, decide
from cvfl.train.party import Party
from cvfl.train.rng import drawing_from
from cvfl.train.schedule import Step
from cvfl.train.steps import assign_message

DRAIN_EVERY = 256  # pipelined: steps between drains where a checkpoint due by time may be taken


class Window:
    """The leader's side: which steps the follower may forward, and which steps checkpoint."""

    def __init__(self, party: Party, clock: CheckpointClock, start: int) -> None:
        """Start the window after step ``start`` (nothing trained, nothing assigned yet)."""
        self.party = party
        self.clock = clock
        self.k = party.cfg.train.staleness
        self.stopping = party.cfg.train.early_stopping
        self.done = start  # the newest step whose gradient has been sent
        self.assigned = start  # the newest step assigned to the follower
        self._steps: Iterator[Step] = party.schedule.steps(start)
        self._queue: deque[Step] = deque()  # steps not trained yet, in order

    def _pull(self, number: int) -> None:
        """Read the schedule up to step ``number`` (or its end)."""
        while not self._queue or self._queue[-1].number < number:
            step = next(self._steps, None)
            if step is None:
                return
            self._queue.append(step)

    def peek(self) -> Step | None:
        """The next step to train, without taking it (None: the job's steps are done)."""
        self._pull(self.done + 1)
        return self._queue[0] if self._queue else None

    def take(self) -> Step | None:
        """The next step to train (None: the job's steps are done)."""
        step = self.peek()
        if step is not None:
            self._queue.popleft()
        return step

    def stopped(self) -> None:
        """Training stops here (early stopping): no step follows."""
        self._queue.clear()
        self._steps = iter(())

    def save(self, step: Step) -> bool:
        """Whether both sides checkpoint after ``step``, the step about to be trained.

        Exact (``k = 0``): as :func:`~cvfl.train.cadence.decide` says. Pipelined: only at a
        boundary, so that a checkpoint due by time waits for the next one and the trajectory
        never depends on the clock.
        """
        epoch_end = self.stopping and step.ends_epoch
        if self.k == 0:
            return decide(self.party, self.clock, step.number) or epoch_end
        return (self._boundary(step) and self.clock.due(step.number)) or epoch_end

    def _boundary(self, step: Step) -> bool:
        """Whether the pipeline drains after ``step`` (decided by its number alone).

        Boundaries: epoch ends, multiples of ``checkpoint_every`` and of :data:`DRAIN_EVERY`.
        """
        number = step.number
        return step.ends_epoch or self.clock.by_steps(number) or number % DRAIN_EVERY == 0

    def sent(self, step: Step, session: AnySession) -> None:
        """The gradient of ``step`` went out: assign what the window now allows.

        With early stopping, nothing is assigned past an epoch end before its decision.
        """
        self.done = step.number
        if not (self.stopping and step.ends_epoch):
            self.fill(session)

    def fill(self, session: AnySession) -> None:
        """Assign every step the window allows that is not assigned yet."""
        self._pull(self.done + 1 + self.k)
        previous: Step | None = None
        for step in self._queue:
            if step.number > self.done + 1 + self.k:
                return
            if previous is not None and self._boundary(previous):
                return  # past a boundary only once its gradient has gone out
            previous = step
            if step.number > self.assigned:
                rows = self.party.my_rows(step.rows)
                session.send(assign_message(step.number, rows))
                self.assigned = step.number


@dataclass
class Forwarded:
    """A step the follower has forwarded and whose gradient it awaits."""

    step: Step
    rows: np.ndarray
    ids: list[str]
    act: torch.Tensor
    stash: dict[str, torch.Tensor] | None  # the weights its forward pass used (k > 0)


class Ahead:
    """The follower's side: its forward passes awaiting their gradients, oldest first."""

    def __init__(self, party: Party) -> None:
        """Forward for ``party`` with its ``[train] staleness``."""
        self.party = party
        self.k = party.cfg.train.staleness
        self.pending: deque[Forwarded] = deque()

    def __len__(self) -> int:
        return len(self.pending)

    def forward(
        self, step: Step, rows: np.ndarray, ids: list[str], x: torch.Tensor
    ) -> torch.Tensor:
        """Run ``step``'s forward pass and remember it; return the activations.

        Raises:
            ProtocolError: the leader assigned more than ``k + 1`` steps without their gradients
                (``protocol.staleness``).
        """
        if len(self.pending) > self.k:
            raise ProtocolError(
                mismatch(
                    f"steps assigned ahead of their gradients at step {step.number}",
                    f"at most {self.k + 1} ([train] staleness = {self.k})",
                    len(self.pending) + 1,
                ),
                code="protocol.staleness",
            )
        act: torch.Tensor
        stash: dict[str, torch.Tensor] | None = None
        with drawing_from(self.party.rng):  # the step's draws: the party's, not the caller's
            if self.k == 0:  # the exact schedule: the live weights, unchanged before the gradient
                act = self.party.trainable(x)
            else:
                stash = {
                    name: p.detach().clone().requires_grad_(p.requires_grad)
                    for name, p in self.party.model.named_parameters()
                }
                act = functional_call(self.party.model, stash, (x,))
        self.pending.append(Forwarded(step, rows, ids, act, stash))
        return act

    def oldest(self, number: int) -> Forwarded:
        """The oldest forwarded step, which must be ``number`` (the gradient that arrived).

        Raises:
            ProtocolError: no step awaits a gradient, or another step does (``protocol.step``).
        """
        if not self.pending:
            raise ProtocolError(
                mismatch("backward step", "none (no forward pass awaits one)", number),
                code="protocol.step",
            )
        expected = self.pending[0].step.number
        if expected != number:
            raise ProtocolError(mismatch("backward step", expected, number), code="protocol.step")
        return self.pending[0]

    def apply(self, grad: torch.Tensor) -> Forwarded:
        """Apply the oldest step's cut-layer gradient to the current weights; forget the step."""
        done = self.pending.popleft()
        optimizer = self.party.optimizer
        optimizer.zero_grad()
        with drawing_from(self.party.rng):
            done.act.backward(grad)  # type: ignore[no-untyped-call]
        if done.stash is not None:
            for name, p in self.party.model.named_parameters():
                p.grad = done.stash[name].grad
        optimizer.step()
        return done
