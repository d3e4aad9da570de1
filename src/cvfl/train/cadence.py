"""When the leader checkpoints: every ``checkpoint_every`` steps and every ``checkpoint_every_s``.

The leader decides (the follower checkpoints when the leader's Backward says so). Steps are the
same on every worker; time is not, so with several workers the leader's workers take worker 0's
decision, agreed every :data:`AGREE_EVERY` steps (a checkpoint due by time waits for the next
such step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from cvfl.train.party import Party

AGREE_EVERY = 10


@dataclass
class CheckpointClock:
    """The leader's checkpoint cadence (0 switches either interval off)."""

    every: int
    every_s: float
    last: float = field(default_factory=time.monotonic)

    def by_steps(self, number: int) -> bool:
        """Whether step ``number`` is a multiple of ``every``."""
        return bool(self.every) and number % self.every == 0

    def due(self, number: int) -> bool:
        """Whether step ``number`` should be checkpointed (by steps, or by time since the last)."""
        timed = self.every_s > 0 and time.monotonic() - self.last >= self.every_s
        return self.by_steps(number) or timed

    def saved(self) -> None:
        """A checkpoint was just taken: the time interval starts again."""
        self.last = time.monotonic()


def decide(party: Party, clock: CheckpointClock, number: int) -> bool:
    """Whether every worker of the leader checkpoints after step ``number``."""
    if party.group is None or clock.every_s <= 0:
        return clock.due(number)
    if number % AGREE_EVERY:
        return clock.by_steps(number)
    mine = torch.tensor([int(clock.due(number))], dtype=torch.uint8)
    flags = party.group.all_gather(mine, what="checkpoint decision")
    return bool(int(flags[0][0]))
